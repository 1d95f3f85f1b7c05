//! Draws the BENCHMARKS.md chart from `throughput --json` output:
//!
//! ```text
//! cargo bench --bench throughput --all-features -- --json target/throughput.json
//! cargo run --release --manifest-path benches/chart/Cargo.toml -- target/throughput.json benches/throughput.png
//! ```
//!
//! One panel per workload; per pattern (at a concurrency limit of 1000), one bar per runtime:
//! ns per task, shorter is better. Text is drawn with DejaVu Sans (Debian `fonts-dejavu-core`).

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use serde::Deserialize;

#[derive(Deserialize)]
struct Row {
    runtime: String,
    work: String,
    pattern: String,
    ns_per_task: f64,
}

/// The patterns drawn, in order: the usual ways to run many tasks with a limit of 1000.
const PATTERNS: [(&str, &str); 9] = [
    ("raw spawn, then await all", "raw spawn (no limit)"),
    ("spawn + Semaphore(1000) per task", "spawn + Semaphore"),
    ("spawn, buffer_unordered(1000)", "spawn + buffer_unordered"),
    ("buffer_unordered(1000), no spawn", "buffer_unordered, no spawn"),
    ("1000 workers pulling a shared iterator", "1000 hand-written workers"),
    ("pool spawn().await, limit 1000", "pool spawn().await"),
    ("pool spawn_queued, limit 1000", "pool spawn_queued"),
    ("pool map, num_concurrent 1000", "pool map"),
    ("pool apply, limit 1000", "pool apply"),
];

const RUNTIMES: [&str; 4] = ["tokio multi-thread", "tokio current-thread", "smol", "async-std"];
const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: chart RESULTS.json OUT.png".into());
    };
    let font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let font = std::fs::read(font_path)
        .map_err(|e| format!("{font_path}: {e} (install Debian's fonts-dejavu-core)"))?;
    register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| "DejaVuSans.ttf is not a usable font")?;
    let rows: Vec<Row> = serde_json::from_str(&std::fs::read_to_string(&input)?)?;

    let root = BitMapBackend::new(&output, (1500, 820)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(60);
    title.titled(
        "async-taskpool: ns per task, limit 1000 (shorter is better)",
        ("sans-serif", 30),
    )?;
    let (body, legend) = body.split_vertically(700);
    let panels = body.split_evenly((1, 2));
    for (panel, work) in panels.iter().zip(["Ready", "Yield4"]) {
        draw_panel(panel, &rows, work)?;
    }
    for (i, (rt, color)) in RUNTIMES.iter().zip(COLORS).enumerate() {
        let x = 300 + i as i32 * 260;
        legend.draw(&Rectangle::new([(x, 15), (x + 24, 35)], color.filled()))?;
        legend.draw(&Text::new(*rt, (x + 32, 14), ("sans-serif", 20)))?;
    }
    root.present()?;
    println!("wrote {output}");
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    rows: &[Row],
    work: &str,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let value = |pattern: &str, runtime: &str| {
        rows.iter()
            .find(|r| r.work == work && r.pattern == pattern && r.runtime == runtime)
            .map(|r| r.ns_per_task)
    };
    let max = PATTERNS
        .iter()
        .flat_map(|(p, _)| RUNTIMES.iter().filter_map(move |rt| value(p, rt)))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let n = PATTERNS.len() as f64;
    let label = if work == "Ready" {
        "tasks that return at once"
    } else {
        "tasks that yield 4 times"
    };
    let mut chart = ChartBuilder::on(area)
        .caption(label, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(230)
        .build_cartesian_2d(0.0..max * 1.1, 0.0..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("ns per task")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 16))
        .draw()?;
    // Pattern names, left of each group of bars.
    for (i, (_, name)) in PATTERNS.iter().enumerate() {
        let (px, py) = chart.plotting_area().map_coordinate(&(0.0, n - i as f64 - 0.5));
        let (ox, oy) = area.get_base_pixel();
        area.draw(&Text::new(
            *name,
            (px - ox - 220, py - oy - 8),
            ("sans-serif", 16),
        ))?;
    }
    let bar = 0.8 / RUNTIMES.len() as f64;
    for (i, (pattern, _)) in PATTERNS.iter().enumerate() {
        let top = n - i as f64 - 0.1;
        for (j, (rt, color)) in RUNTIMES.iter().zip(COLORS).enumerate() {
            let Some(ns) = value(pattern, rt) else { continue };
            let y0 = top - (j + 1) as f64 * bar;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0), (ns, y0 + bar * 0.9)],
                color.filled(),
            )))?;
        }
    }
    Ok(())
}
