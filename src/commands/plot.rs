//! `nzip bench --plot FILE.svg`: the run's bits per byte against speed, one panel for
//! compression and one for decompression, every tool a labelled point (speed on a log scale:
//! the tools span five orders of magnitude).

use std::path::Path;

use plotters::prelude::*;

use nzip::{Error, Result};

/// One tool's totals over the run's files.
pub struct Point {
    pub tool: String,
    pub bits_per_byte: f64,
    /// Original KB per second, compressing and decompressing (`None`: not measured).
    pub speed_kbs: [Option<f64>; 2],
}

const SIZE: (u32, u32) = (1000, 460);
const PANELS: [&str; 2] = ["compress", "decompress"];
const FONT: &str = "sans-serif";

/// Writes the chart to `path` as SVG. `subtitle` says what was measured (files, slices,
/// machine), so the picture carries its own caption.
pub fn write_svg(path: &Path, points: &[Point], subtitle: &str) -> Result<()> {
    let svg = render(points, subtitle).map_err(|e| Error::Internal(format!("plot: {e}")))?;
    std::fs::write(path, svg).map_err(|e| Error::io(path, e))
}

fn render(points: &[Point], subtitle: &str) -> std::result::Result<String, String> {
    let mut svg = String::new();
    {
        let full = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        full.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = full
            .titled(
                &format!("bits per byte against speed: {subtitle}"),
                (FONT, 16),
            )
            .map_err(|e| e.to_string())?;
        let (max_bpb, speeds) = extent(points);
        let (lo, hi) = speeds.unwrap_or((0.1, 10.0));
        // Margin each side keeps the points and their labels inside the frame.
        let x_range = (lo / 3.0)..(hi * 3.0);
        let y_range = 0.0..(max_bpb * 1.15).max(0.5);
        let panels = root.split_evenly((1, 2));
        for (side, (area, name)) in panels.iter().zip(PANELS).enumerate() {
            let mut chart = ChartBuilder::on(area)
                .caption(name, (FONT, 15))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(48)
                .build_cartesian_2d(x_range.clone().log_scale(), y_range.clone())
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("KB/s of original data (log scale)")
                .y_desc("bits per byte (lower is smaller)")
                .x_label_formatter(&|v| format_speed(*v))
                .draw()
                .map_err(|e| e.to_string())?;
            let shown: Vec<(usize, &Point, (f64, f64))> = points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((i, p, (p.speed_kbs[side]?, p.bits_per_byte))))
                .collect();
            // Labels keep clear of every point, not only of each other.
            let mut labels = Labels::default();
            for (_, _, at) in &shown {
                labels.mark_point(chart.backend_coord(at));
            }
            for (i, p, at) in shown {
                let colour = Palette99::pick(i).to_rgba();
                chart
                    .draw_series([Circle::new(at, 5, colour.filled())])
                    .map_err(|e| e.to_string())?
                    .label(p.tool.as_str())
                    .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
                let (x, y) = labels.place(chart.backend_coord(&at), &p.tool);
                full.draw(&Text::new(p.tool.clone(), (x, y), (FONT, 12)))
                    .map_err(|e| e.to_string())?;
            }
            if side == 0 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::LowerRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.4))
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }
        full.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Point labels placed so that they do not overlap: each tries spots around its point, nearest
/// first, and takes the first that is free (the classic tools' decompression speeds cluster).
#[derive(Default)]
struct Labels {
    taken: Vec<(i32, i32, i32, i32)>,
}

/// Text metrics for 12-pixel sans-serif, generous so that estimates never overlap.
const CHAR_W: i32 = 7;
const LINE_H: i32 = 13;

impl Labels {
    /// Keeps labels off a point drawn at pixel `(x, y)`.
    fn mark_point(&mut self, (x, y): (i32, i32)) {
        self.taken.push((x - 6, y - 6, x + 6, y + 6));
    }

    /// Top-left corner for `text` near the point at pixel `(x, y)`.
    fn place(&mut self, (x, y): (i32, i32), text: &str) -> (i32, i32) {
        let w = CHAR_W * text.chars().count() as i32;
        let h = LINE_H;
        let spots = (0..8).flat_map(|k| {
            let dy = k * h;
            [
                (x + 7, y - h - 2 - dy),
                (x + 7, y + 2 + dy),
                (x - 7 - w, y - h - 2 - dy),
                (x - 7 - w, y + 2 + dy),
            ]
        });
        let mut chosen = (x + 7, y - h - 2);
        for (sx, sy) in spots {
            let rect = (sx, sy, sx + w, sy + h);
            if !self.taken.iter().any(|t| overlaps(*t, rect)) {
                chosen = (sx, sy);
                break;
            }
        }
        self.taken
            .push((chosen.0, chosen.1, chosen.0 + w, chosen.1 + h));
        chosen
    }
}

fn overlaps(a: (i32, i32, i32, i32), b: (i32, i32, i32, i32)) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// The largest bits per byte, and the smallest and largest speed, over every point.
fn extent(points: &[Point]) -> (f64, Option<(f64, f64)>) {
    let max_bpb = points.iter().map(|p| p.bits_per_byte).fold(0.0, f64::max);
    let speeds = points
        .iter()
        .flat_map(|p| p.speed_kbs.iter().flatten().copied())
        .filter(|s| s.is_finite() && *s > 0.0);
    let range = speeds.fold(None, |acc: Option<(f64, f64)>, s| match acc {
        None => Some((s, s)),
        Some((lo, hi)) => Some((lo.min(s), hi.max(s))),
    });
    (max_bpb, range)
}

fn format_speed(kbs: f64) -> String {
    if kbs >= 1.0 {
        format!("{kbs:.0}")
    } else {
        format!("{kbs:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_named_and_speeds_span_the_axis() {
        let points = vec![
            Point {
                tool: "nzip -5".into(),
                bits_per_byte: 1.1,
                speed_kbs: [Some(0.25), Some(0.24)],
            },
            Point {
                tool: "gzip -9".into(),
                bits_per_byte: 2.9,
                speed_kbs: [Some(20_000.0), None],
            },
        ];
        let svg = render(&points, "test").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        for name in ["nzip -5", "gzip -9", "compress", "decompress"] {
            assert!(svg.lines().any(|l| l.trim() == name), "{name} missing");
        }
        assert_eq!(extent(&points), (2.9, Some((0.24, 20_000.0))));
    }

    #[test]
    fn labels_of_nearby_points_do_not_overlap() {
        let mut labels = Labels::default();
        let at = [(300, 200), (304, 201), (310, 199), (296, 200)];
        for p in at {
            labels.mark_point(p);
        }
        let spots: Vec<(i32, i32)> = ["gzip -9", "bzip2 -9", "xz -9e", "zstd -19"]
            .iter()
            .zip(at)
            .map(|(t, p)| labels.place(p, t))
            .collect();
        // The last four rectangles are the labels: clear of each other and of every point.
        let (marks, placed) = labels.taken.split_at(4);
        for (i, a) in placed.iter().enumerate() {
            for b in marks.iter().chain(&placed[i + 1..]) {
                assert!(!overlaps(*a, *b), "{a:?} and {b:?} overlap");
            }
        }
        // Up and right, one line higher than alone: the points beside it are in the way.
        assert_eq!(spots[0], (307, 172));
    }
}
