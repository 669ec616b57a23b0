//! Small hand-written SVG charts for `bench/results/`: no plotting
//! dependency, and the files diff as text.

use std::fmt::Write;

const WIDTH: f64 = 760.0;
const LEFT: f64 = 300.0;
const COLORS: [&str; 3] = ["#4c78a8", "#f58518", "#54a24b"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The document's start: its size, a white background and the title.
fn open(title: &str, height: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    )
}

/// Horizontal bars: one group per row, one bar per series value.
pub fn bars(title: &str, unit: &str, series: &[&str], rows: &[(String, Vec<f64>)]) -> String {
    let bar = 14.0;
    let group = bar * series.len() as f64 + 10.0;
    let top = 50.0;
    let height = top + group * rows.len() as f64 + 30.0;
    let max = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let span = WIDTH - LEFT - 90.0;
    let mut svg = open(title, height);
    for (i, name) in series.iter().enumerate() {
        let x = LEFT + i as f64 * 120.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="30" width="10" height="10" fill="{}"/><text x="{}" y="39">{}</text>"#,
            COLORS[i % COLORS.len()],
            x + 14.0,
            escape(name)
        );
    }
    for (r, (label, values)) in rows.iter().enumerate() {
        let y0 = top + r as f64 * group;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y0 + group / 2.0,
            escape(label)
        );
        for (i, v) in values.iter().enumerate() {
            let y = y0 + i as f64 * bar;
            let w = (v / max * span).max(1.0);
            let _ = write!(
                svg,
                r#"<rect x="{LEFT}" y="{y}" width="{w:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}">{v:.1} {unit}</text>"#,
                bar - 2.0,
                COLORS[i % COLORS.len()],
                LEFT + w + 4.0,
                y + bar - 4.0
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// One line through `points` (x, y), with both axes from zero.
pub fn line(title: &str, x_label: &str, y_label: &str, points: &[(f64, f64)]) -> String {
    let (height, left, bottom, top) = (320.0, 70.0, 270.0, 40.0);
    let right = WIDTH - 30.0;
    let max_x = points.iter().map(|p| p.0).fold(0.0_f64, f64::max).max(1e-9);
    let max_y = points.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9) * 1.15;
    let px = |x: f64| left + x / max_x * (right - left);
    let py = |y: f64| bottom - y / max_y * (bottom - top);
    let mut svg = open(title, height);
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/><line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>"##
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"#,
        (left + right) / 2.0,
        height - 12.0,
        escape(x_label),
        (top + bottom) / 2.0,
        (top + bottom) / 2.0,
        escape(y_label)
    );
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
        .collect();
    let _ = write!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
        path.join(" "),
        COLORS[0]
    );
    for (x, y) in points {
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{y:.0}</text><text x="{:.1}" y="{}" text-anchor="middle">{x:.0}</text>"#,
            px(*x),
            py(*y),
            COLORS[0],
            px(*x),
            py(*y) - 8.0,
            px(*x),
            bottom + 16.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
