//! `failover_timeline`: the latency of every request of the failover run over time, one
//! colour per request type, failed requests as crosses, and vertical lines where replicas
//! were killed (red) and restarted (green).

use std::collections::HashSet;

use anyhow::{Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::input::{Failover, Fault, FaultKind, Kind};
use crate::render::{
    FONT, Figure, KILL_COLOR, NOTE_SIZE, RESTART_COLOR, Swatch, format_ms, house_mesh, kind_color,
    legend_row, log_axis, titled,
};

/// The figure: the parsed `failover.csv`.
pub struct FailoverTimeline {
    data: Failover,
}

impl FailoverTimeline {
    pub fn new(data: Failover) -> Result<Self> {
        if data.requests.is_empty() {
            bail!("failover_timeline: no request row to plot");
        }
        Ok(Self { data })
    }
}

/// Assigns each label (left and right pixel edges, in drawing order) the first row in
/// which it overlaps no earlier label; returns the row of each.
pub fn label_rows(spans: &[(i32, i32)]) -> Vec<usize> {
    let mut row_ends: Vec<i32> = Vec::new();
    spans
        .iter()
        .map(|&(left, right)| {
            let row = row_ends
                .iter()
                .position(|&end| left > end + 6)
                .unwrap_or(row_ends.len());
            if row == row_ends.len() {
                row_ends.push(right);
            } else {
                row_ends[row] = right;
            }
            row
        })
        .collect()
}

impl Figure for FailoverTimeline {
    fn stem(&self) -> &'static str {
        "failover_timeline"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let area = titled(
            root,
            "Latency of each request while replicas are killed and restarted",
        )?;
        let (_, height) = area.dim_in_pixel();
        let (plot, legend) = area.split_vertically(height.saturating_sub(50));

        let requests = &self.data.requests;
        let faults = &self.data.faults;
        let positive = requests.iter().map(|r| r.latency_ms).filter(|ms| *ms > 0.0);
        let axis = log_axis(
            positive.clone().fold(f64::INFINITY, f64::min),
            positive.fold(0.0, f64::max),
        );
        let end = requests
            .iter()
            .map(|r| r.time_s)
            .chain(faults.iter().map(|f| f.time_s))
            .fold(0.0, f64::max);
        let end = (end * 1.02).max(1.0).ceil();

        // The chart is laid out twice: once to find where the fault lines fall (the
        // horizontal layout does not depend on the top margin), then with a top margin
        // holding as many rows of fault labels as needed so that none overlaps another.
        let build = |top_margin: u32| {
            ChartBuilder::on(&plot)
                .margin(12)
                .margin_top(top_margin)
                .margin_right(28)
                .x_label_area_size(52)
                .y_label_area_size(72)
                .build_cartesian_2d(
                    0.0..end,
                    (axis.low..axis.high)
                        .log_scale()
                        .with_key_points(axis.ticks.clone()),
                )
        };
        let labels = fault_labels(root, &build(12)?, faults, axis.low)?;
        let rows = labels.iter().map(|l| l.row + 1).max().unwrap_or(0);
        let row_height = labels.first().map_or(0, |l| l.height + 6);
        let mut chart = build(12 + rows as u32 * row_height as u32)?;
        house_mesh(chart.configure_mesh())
            .x_desc("time since the start of the run (s)")
            .y_desc("request latency (ms, log scale)")
            .x_labels(16)
            .x_label_formatter(&|t| format!("{t}"))
            .y_label_formatter(&|ms| format_ms(*ms))
            .draw()?;

        // The fault lines go under the points, their labels over them.
        for fault in faults {
            let color = match fault.kind {
                FaultKind::Kill => KILL_COLOR,
                FaultKind::Restart => RESTART_COLOR,
            };
            chart.draw_series(LineSeries::new(
                [(fault.time_s, axis.low), (fault.time_s, axis.high)],
                color.stroke_width(2),
            ))?;
        }

        let clamp = |ms: f64| ms.clamp(axis.low, axis.high);
        for kind in Kind::ALL {
            let color = kind_color(kind);
            // Tens of thousands of answered requests overlap: one circle (4 px wide) per 2×2
            // pixel cell and kind looks the same and keeps the SVG megabytes smaller.
            let mut drawn = HashSet::new();
            let points: Vec<_> = requests
                .iter()
                .filter(|r| r.kind == kind && !r.failed())
                .map(|r| (r.time_s, clamp(r.latency_ms)))
                .filter(|point| {
                    let (x, y) = chart.backend_coord(point);
                    drawn.insert((x / 2, y / 2))
                })
                .collect();
            chart.draw_series(
                points
                    .into_iter()
                    .map(|point| Circle::new(point, 2, color.mix(0.6).filled())),
            )?;
        }
        for kind in Kind::ALL {
            let color = kind_color(kind);
            chart.draw_series(
                requests
                    .iter()
                    .filter(|r| r.kind == kind && r.failed())
                    .map(|r| Cross::new((r.time_s, clamp(r.latency_ms)), 6, color.stroke_width(3))),
            )?;
        }

        // Connectors first, then the labels on white boxes over them: a line passing
        // through a lower row never crosses a label's text.
        let plot_top = chart.plotting_area().get_pixel_range().1.start;
        let label_bottom = |row: usize| plot_top - 3 - row as i32 * row_height;
        for label in &labels {
            let middle = label_bottom(label.row) - label.height / 2;
            root.draw(&PathElement::new(
                [(label.line_x, plot_top), (label.line_x, middle)],
                label.color.stroke_width(2),
            ))?;
        }
        for label in &labels {
            let bottom = label_bottom(label.row);
            root.draw(&Rectangle::new(
                [
                    (label.left - 2, bottom - label.height - 1),
                    (label.left + label.width + 2, bottom + 1),
                ],
                WHITE.filled(),
            ))?;
            root.draw(&Text::new(
                label.text.as_str(),
                (label.left, bottom),
                (FONT, NOTE_SIZE)
                    .into_font()
                    .color(&label.color)
                    .pos(Pos::new(HPos::Left, VPos::Bottom)),
            ))?;
        }

        let mut entries: Vec<(Swatch, String)> = Kind::ALL
            .iter()
            .map(|&kind| (Swatch::Dot(kind_color(kind)), kind.name().to_string()))
            .collect();
        entries.push((
            Swatch::Cross(RGBColor(90, 90, 90)),
            "failed (no answer or error status), colour = type".to_string(),
        ));
        let line = |color| Swatch::Line {
            color,
            dashed: false,
            marker: None,
        };
        entries.push((line(KILL_COLOR), "node killed".to_string()));
        entries.push((line(RESTART_COLOR), "node restarted".to_string()));
        legend_row(&legend, &entries)
    }
}

/// A fault's label, placed above the plot in pixels.
struct FaultLabel {
    text: String,
    color: RGBColor,
    /// Pixel column of the fault line.
    line_x: i32,
    left: i32,
    width: i32,
    height: i32,
    /// 0 is the row right above the plot.
    row: usize,
}

/// "kill node N" / "restart node N" for each fault, right of its line (left of it near the
/// right edge), in rows chosen so that no two labels overlap.
fn fault_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'_, DB, impl CoordTranslate<From = (f64, f64)>>,
    faults: &[Fault],
    y_in_range: f64,
) -> Result<Vec<FaultLabel>>
where
    DB::ErrorType: 'static,
{
    let style = TextStyle::from((FONT, NOTE_SIZE).into_font());
    let (x_range, _) = chart.plotting_area().get_pixel_range();
    let mut labels = Vec::new();
    let mut spans = Vec::new();
    for fault in faults {
        let (verb, color) = match fault.kind {
            FaultKind::Kill => ("kill", KILL_COLOR),
            FaultKind::Restart => ("restart", RESTART_COLOR),
        };
        let text = format!("{verb} node {}", fault.node);
        let (width, height) = root.estimate_text_size(&text, &style)?;
        let (width, height) = (width as i32, height as i32);
        let (line_x, _) = chart.as_coord_spec().translate(&(fault.time_s, y_in_range));
        let line_x = line_x.clamp(x_range.start, x_range.end);
        let left = if line_x + 5 + width < x_range.end + 20 {
            line_x + 5
        } else {
            line_x - 5 - width
        };
        spans.push((left, left + width));
        labels.push(FaultLabel {
            text,
            color,
            line_x,
            left,
            width,
            height,
            row: 0,
        });
    }
    for (label, row) in labels.iter_mut().zip(label_rows(&spans)) {
        label.row = row;
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_labels_go_to_the_next_free_row() {
        // Second overlaps the first; third clears the first; fourth overlaps both rows.
        let rows = label_rows(&[(0, 100), (50, 150), (120, 200), (160, 260)]);
        assert_eq!(rows, vec![0, 1, 0, 1]);
        let rows = label_rows(&[(0, 100), (50, 150), (90, 190)]);
        assert_eq!(rows, vec![0, 1, 2]);
    }
}
