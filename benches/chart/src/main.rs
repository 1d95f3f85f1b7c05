//! Draws the BENCHMARKS.md chart from `throughput --json` output:
//!
//! ```text
//! cargo bench --bench throughput --all-features -- --json target/throughput.json
//! cargo run --release --manifest-path benches/chart/Cargo.toml -- target/throughput.json benches/throughput.png
//! ```
//!
//! Issue 15's key ratios: one panel per workload and producer placement; per target, one bar
//! per runtime (the ratio measured in the same run), and a red mark at the target's bound.
//! Text is drawn with DejaVu Sans (Debian `fonts-dejavu-core`).

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use serde::Deserialize;

#[derive(Deserialize)]
struct Row {
    section: String,
    runtime: String,
    work: String,
    producer: String,
    kind: String,
    limit: Option<String>,
    ratio: Option<f64>,
    ratio_buffered: Option<f64>,
}

/// One group of bars: a pattern at a limit, which ratio, the target's bound, and its label.
struct Group {
    kind: &'static str,
    limit: Option<&'static str>,
    buffered: bool,
    bound: f64,
    label: &'static str,
}

const GROUPS: [Group; 7] = [
    group("PoolQueued", Some("1000"), false, 1.10, "spawn_queued, C=1000"),
    group("PoolSpawn", Some("16"), false, 1.25, "spawn().await, C=16"),
    group("Exec", None, false, 1.10, "exec loop ÷ raw loop"),
    group("Map", Some("1000"), false, 0.35, "map, C=1000"),
    group("MapUnordered", Some("1000"), false, 0.35, "map_unordered, C=1000"),
    group("Apply", Some("1000"), false, 0.35, "apply, C=1000"),
    group("Map", Some("1000"), true, 2.0, "map ÷ buffer_unordered"),
];

const fn group(
    kind: &'static str,
    limit: Option<&'static str>,
    buffered: bool,
    bound: f64,
    label: &'static str,
) -> Group {
    Group {
        kind,
        limit,
        buffered,
        bound,
        label,
    }
}

const RUNTIMES: [&str; 4] = [
    "tokio multi-thread (2)",
    "tokio current-thread",
    "smol",
    "async-std",
];
const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];
/// Bars longer than this are cut, with their value written at the cut.
const X_MAX: f64 = 4.0;

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
    let rows: Vec<Row> = rows.into_iter().filter(|r| r.section == "runtimes").collect();

    let root = BitMapBackend::new(&output, (1600, 1240)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(60);
    title.titled(
        "async-taskpool: ratio to raw spawn of the same runtime, same run (shorter is better; red: issue 15's target)",
        ("sans-serif", 24),
    )?;
    let (body, legend) = body.split_vertically(1130);
    let panels = body.split_evenly((2, 2));
    let layout = [
        ("Ready", "block_on", "ready tasks, producer on the block_on thread"),
        ("Ready", "task", "ready tasks, producer in a runtime task"),
        ("Yield4", "block_on", "tasks that yield 4 times, producer on block_on"),
        ("Yield4", "task", "tasks that yield 4 times, producer in a task"),
    ];
    for (panel, (work, producer, caption)) in panels.iter().zip(layout) {
        draw_panel(panel, &rows, work, producer, caption)?;
    }
    for (i, (rt, color)) in RUNTIMES.iter().zip(COLORS).enumerate() {
        let x = 260 + i as i32 * 300;
        legend.draw(&Rectangle::new([(x, 12), (x + 24, 32)], color.filled()))?;
        legend.draw(&Text::new(*rt, (x + 32, 11), ("sans-serif", 20)))?;
    }
    root.present()?;
    println!("wrote {output}");
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    rows: &[Row],
    work: &str,
    producer: &str,
    caption: &str,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let value = |g: &Group, runtime: &str| {
        rows.iter()
            .find(|r| {
                r.work == work
                    && r.producer == producer
                    && r.runtime == runtime
                    && r.kind == g.kind
                    && r.limit.as_deref() == g.limit
            })
            .and_then(|r| if g.buffered { r.ratio_buffered } else { r.ratio })
    };
    let n = GROUPS.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(190)
        .build_cartesian_2d(0.0..X_MAX, 0.0..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("ratio")
        .x_label_formatter(&|x| format!("{x:.1}x"))
        .label_style(("sans-serif", 14))
        .draw()?;
    let (ox, oy) = area.get_base_pixel();
    let bar = 0.8 / RUNTIMES.len() as f64;
    for (i, g) in GROUPS.iter().enumerate() {
        let top = n - i as f64 - 0.1;
        // The group's name, left of its bars.
        let (px, py) = chart.plotting_area().map_coordinate(&(0.0, top - 0.45));
        area.draw(&Text::new(
            g.label,
            (px - ox - 185, py - oy - 8),
            ("sans-serif", 14),
        ))?;
        for (j, (rt, color)) in RUNTIMES.iter().zip(COLORS).enumerate() {
            let Some(ratio) = value(g, rt) else { continue };
            let y0 = top - (j + 1) as f64 * bar;
            let end = ratio.min(X_MAX);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0), (end, y0 + bar * 0.9)],
                color.filled(),
            )))?;
            let (tx, ty) = chart.plotting_area().map_coordinate(&(end, y0 + bar * 0.9));
            let text = if ratio > X_MAX {
                format!("{ratio:.1}x →")
            } else {
                format!("{ratio:.2}")
            };
            let tx = if ratio > X_MAX { tx - ox - 70 } else { tx - ox + 3 };
            area.draw(&Text::new(text, (tx, ty - oy), ("sans-serif", 11)))?;
        }
        // The target: a red mark across the group.
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(g.bound, top + 0.02), (g.bound, top - 0.82)],
            RED.stroke_width(3),
        )))?;
    }
    Ok(())
}
