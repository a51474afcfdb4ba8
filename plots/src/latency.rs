//! `latency_vs_p`: latency of each request type against the order probability p, one
//! line per request type and cache setting, in two panels (median and p99).

use anyhow::{Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::input::{Cache, Kind, LatencyRow};
use crate::render::{
    CAPTION_SIZE, FONT, Figure, Swatch, TEXT_COLOR, format_ms, house_mesh, kind_color, legend_row,
    log_axis, titled,
};

/// Which percentile a panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    P50,
    P99,
}

impl Stat {
    fn of(self, row: &LatencyRow) -> f64 {
        match self {
            Stat::P50 => row.p50_ms,
            Stat::P99 => row.p99_ms,
        }
    }

    fn caption(self) -> &'static str {
        match self {
            Stat::P50 => "Median (p50)",
            Stat::P99 => "99th percentile (p99)",
        }
    }
}

/// One line of a panel: (p, latency in ms) sorted by p.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub kind: Kind,
    pub cache: Cache,
    pub points: Vec<(f64, f64)>,
}

/// The lines of one panel, skipping points measured on no request (count 0) and lines
/// left with no point.
pub fn series(rows: &[LatencyRow], stat: Stat) -> Vec<Series> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        for cache in Cache::ALL {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.kind == kind && r.cache == cache && r.count > 0)
                .map(|r| (r.p, stat.of(r)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !points.is_empty() {
                out.push(Series {
                    kind,
                    cache,
                    points,
                });
            }
        }
    }
    out
}

/// The figure: checked rows of `latency.csv`.
pub struct LatencyVsP {
    rows: Vec<LatencyRow>,
}

impl LatencyVsP {
    pub fn new(rows: Vec<LatencyRow>) -> Result<Self> {
        if !rows.iter().any(|r| r.count > 0) {
            bail!("latency_vs_p: no row with count > 0 to plot");
        }
        Ok(Self { rows })
    }
}

impl Figure for LatencyVsP {
    fn stem(&self) -> &'static str {
        "latency_vs_p"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let area = titled(root, "Request latency vs order probability p")?;
        let (_, height) = area.dim_in_pixel();
        let (panels, legend) = area.split_vertically(height.saturating_sub(50));
        let mut ps: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| r.count > 0)
            .map(|r| r.p)
            .collect();
        ps.sort_by(f64::total_cmp);
        ps.dedup();
        for (panel, stat) in panels
            .split_evenly((1, 2))
            .iter()
            .zip([Stat::P50, Stat::P99])
        {
            draw_panel(panel, stat, &series(&self.rows, stat), &ps)?;
        }
        let mut entries: Vec<(Swatch, String)> = Kind::ALL
            .iter()
            .map(|&kind| {
                let swatch = Swatch::Line {
                    color: kind_color(kind),
                    dashed: false,
                    marker: None,
                };
                (swatch, kind.name().to_string())
            })
            .collect();
        let grey = RGBColor(90, 90, 90);
        for cache in Cache::ALL {
            let on = cache == Cache::On;
            let swatch = Swatch::Line {
                color: grey,
                dashed: !on,
                marker: Some(on),
            };
            entries.push((swatch, cache.to_string()));
        }
        legend_row(&legend, &entries)
    }
}

fn draw_panel<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    stat: Stat,
    lines: &[Series],
    ps: &[f64],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let values = lines.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let min = values.clone().fold(f64::INFINITY, f64::min);
    let max = values.fold(0.0, f64::max);
    let axis = log_axis(min, max);
    let first_p = ps.first().copied().unwrap_or(0.0);
    let last_p = ps.last().copied().unwrap_or(1.0);
    let pad = ((last_p - first_p) * 0.05).max(0.02);

    let mut chart = ChartBuilder::on(panel)
        .caption(
            stat.caption(),
            (FONT, CAPTION_SIZE).into_font().color(&TEXT_COLOR),
        )
        .margin(12)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (first_p - pad)..(last_p + pad),
            (axis.low..axis.high)
                .log_scale()
                .with_key_points(axis.ticks.clone()),
        )?;
    house_mesh(chart.configure_mesh())
        .x_desc("order probability p")
        .y_desc("latency (ms, log scale)")
        .x_labels(ps.len().max(2) * 2)
        .x_label_formatter(&|p| format!("{p:.1}"))
        .y_label_formatter(&|ms| format_ms(*ms))
        .draw()?;

    for line in lines {
        let color = kind_color(line.kind);
        let style = color.stroke_width(2);
        match line.cache {
            Cache::On => {
                chart.draw_series(LineSeries::new(line.points.iter().copied(), style))?;
                chart.draw_series(
                    line.points
                        .iter()
                        .map(|&point| Circle::new(point, 4, color.filled())),
                )?;
            }
            Cache::Off => {
                chart.draw_series(DashedLineSeries::new(
                    line.points.iter().copied(),
                    9,
                    6,
                    style,
                ))?;
                chart.draw_series(line.points.iter().map(|&point| {
                    EmptyElement::at(point)
                        + Circle::new((0, 0), 4, WHITE.filled())
                        + Circle::new((0, 0), 4, color.stroke_width(2))
                }))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cache: Cache, p: f64, kind: Kind, count: u64, p50: f64) -> LatencyRow {
        LatencyRow {
            cache,
            p,
            kind,
            count,
            errors: 0,
            p50_ms: p50,
            p90_ms: p50 * 2.0,
            p99_ms: p50 * 4.0,
            mean_ms: p50,
        }
    }

    #[test]
    fn zero_count_points_are_skipped_and_points_sorted_by_p() {
        let rows = vec![
            row(Cache::On, 0.4, Kind::Order, 50, 8.0),
            row(Cache::On, 0.0, Kind::Order, 0, 0.0),
            row(Cache::On, 0.2, Kind::Order, 20, 7.0),
            row(Cache::On, 0.0, Kind::Lookup, 0, 0.0),
            row(Cache::Off, 0.0, Kind::Query, 100, 1.5),
        ];
        let p50 = series(&rows, Stat::P50);
        assert_eq!(
            p50,
            vec![
                Series {
                    kind: Kind::Query,
                    cache: Cache::Off,
                    points: vec![(0.0, 1.5)],
                },
                Series {
                    kind: Kind::Order,
                    cache: Cache::On,
                    points: vec![(0.2, 7.0), (0.4, 8.0)],
                },
            ]
        );
        let p99 = series(&rows, Stat::P99);
        assert_eq!(p99[1].points, vec![(0.2, 28.0), (0.4, 32.0)]);
    }

    #[test]
    fn no_measured_row_is_an_error() {
        let rows = vec![row(Cache::On, 0.0, Kind::Order, 0, 0.0)];
        assert!(LatencyVsP::new(rows).is_err());
    }
}
