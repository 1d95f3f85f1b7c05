//! Draws the queue chart of BENCHMARKS.md from `queue --json` output (see
//! `queue/benches/run.sh`):
//!
//! ```text
//! cargo run --release --manifest-path queue/benches/chart/Cargo.toml -- target/queue-bench.json queue/benches/queue.png
//! ```
//!
//! Left: drain throughput by worker processes, one bar per system (higher is better).
//! Right: enqueue-to-start latency, p50 and p99, per system and load (shorter is better).
//! Text is drawn with DejaVu Sans (Debian `fonts-dejavu-core`).

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use serde::Deserialize;

#[derive(Deserialize)]
struct Drain {
    system: String,
    workers: usize,
    jobs_per_s: f64,
}

#[derive(Deserialize)]
struct Latency {
    system: String,
    load: String,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Deserialize)]
struct Results {
    drain: Vec<Drain>,
    latency: Vec<Latency>,
}

const COLORS: [RGBColor; 3] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44)];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: chart RESULTS.json OUT.png".into());
    };
    let font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let font = std::fs::read(font_path).map_err(|e| format!("{font_path}: {e} (install Debian's fonts-dejavu-core)"))?;
    register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| "DejaVuSans.ttf is not a usable font")?;
    let r: Results = serde_json::from_str(&std::fs::read_to_string(&input)?)?;
    let mut systems: Vec<&str> = Vec::new();
    for d in &r.drain {
        if !systems.contains(&d.system.as_str()) {
            systems.push(&d.system);
        }
    }
    let mut counts: Vec<usize> = r.drain.iter().map(|d| d.workers).collect();
    counts.sort();
    counts.dedup();

    let root = BitMapBackend::new(&output, (1500, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(60);
    title.titled("async-taskpool-queue on PostgreSQL, side by side", ("sans-serif", 30))?;
    let (body, legend) = body.split_vertically(580);
    let (left, right) = body.split_horizontally(800);

    // Throughput: groups by worker count, a bar per system.
    let max = r.drain.iter().map(|d| d.jobs_per_s).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&left)
        .caption("drain: jobs per second (higher is better)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..counts.len() as f64, 0.0..max * 1.1)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(counts.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 0.01 && i >= 0.0 {
                counts.get(i as usize).map_or(String::new(), |n| format!("{n} worker{}", if *n == 1 { "" } else { "s" }))
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 16))
        .draw()?;
    let bar = 0.8 / systems.len() as f64;
    for (i, n) in counts.iter().enumerate() {
        for (j, (sys, color)) in systems.iter().zip(COLORS).enumerate() {
            let Some(d) = r.drain.iter().find(|d| d.workers == *n && d.system == *sys) else { continue };
            let x0 = i as f64 + 0.1 + j as f64 * bar;
            chart.draw_series(std::iter::once(Rectangle::new([(x0, 0.0), (x0 + bar * 0.9, d.jobs_per_s)], color.filled())))?;
        }
    }

    // Latency: one row per system and load, p50 solid, p99 light.
    let rows: Vec<&Latency> = r.latency.iter().collect();
    let lmax = rows.iter().map(|l| l.p99_ms).fold(1.0, f64::max);
    let n = rows.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&right)
        .caption("enqueue → start: p50 (dark), p99 (light), ms", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(10)
        .build_cartesian_2d(0.0..lmax * 1.4, 0.0..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .light_line_style(WHITE)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 16))
        .draw()?;
    for (i, l) in rows.iter().enumerate() {
        let color = COLORS[systems.iter().position(|s| *s == l.system).unwrap_or(0) % COLORS.len()];
        let y0 = n - i as f64 - 0.8;
        chart.draw_series(std::iter::once(Rectangle::new([(0.0, y0), (l.p99_ms, y0 + 0.6)], color.mix(0.35).filled())))?;
        chart.draw_series(std::iter::once(Rectangle::new([(0.0, y0), (l.p50_ms, y0 + 0.6)], color.filled())))?;
        let load = l.load.split(" (").next().unwrap_or(&l.load);
        chart.draw_series(std::iter::once(Text::new(
            format!("{load}: {:.1} / {:.1}", l.p50_ms, l.p99_ms),
            (l.p99_ms + lmax * 0.01, y0 + 0.45),
            ("sans-serif", 15),
        )))?;
    }

    for (i, (sys, color)) in systems.iter().zip(COLORS).enumerate() {
        let x = 150 + i as i32 * 430;
        legend.draw(&Rectangle::new([(x, 15), (x + 24, 35)], color.filled()))?;
        legend.draw(&Text::new(*sys, (x + 32, 14), ("sans-serif", 20)))?;
    }
    root.present()?;
    println!("wrote {output}");
    Ok(())
}
