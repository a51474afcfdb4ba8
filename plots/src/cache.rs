//! `cache_benefit`: median query latency with the front end's cache on and off at each
//! order probability p, as grouped bars with the speed-up written over each group.

use anyhow::{Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::input::{Cache, Kind, LatencyRow};
use crate::render::{
    CAPTION_SIZE, FONT, Figure, LABEL_SIZE, NOTE_SIZE, Swatch, TEXT_COLOR, house_mesh, legend_row,
    titled,
};

const ON_COLOR: RGBColor = RGBColor(31, 119, 180);
const OFF_COLOR: RGBColor = RGBColor(160, 190, 220);

/// The two bars at one p; a side is `None` when that run measured no query.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub p: f64,
    pub on_ms: Option<f64>,
    pub off_ms: Option<f64>,
}

impl Group {
    /// How many times faster the median is with the cache (off / on), when both exist.
    pub fn speedup(&self) -> Option<f64> {
        match (self.on_ms, self.off_ms) {
            (Some(on), Some(off)) if on > 0.0 => Some(off / on),
            _ => None,
        }
    }
}

/// The query medians grouped by p, in increasing p.
pub fn groups(rows: &[LatencyRow]) -> Vec<Group> {
    let queries = || rows.iter().filter(|r| r.kind == Kind::Query && r.count > 0);
    let mut ps: Vec<f64> = queries().map(|r| r.p).collect();
    ps.sort_by(f64::total_cmp);
    ps.dedup();
    ps.into_iter()
        .map(|p| {
            let median = |cache| {
                queries()
                    .find(|r| r.p == p && r.cache == cache)
                    .map(|r| r.p50_ms)
            };
            Group {
                p,
                on_ms: median(Cache::On),
                off_ms: median(Cache::Off),
            }
        })
        .collect()
}

/// "3.7× faster (−73%)", or "1.2× slower (+20%)".
pub fn speedup_label(speedup: f64, short: bool) -> String {
    let change = (1.0 / speedup - 1.0) * 100.0;
    let sign = if change < 0.0 { "−" } else { "+" };
    let (factor, word) = if speedup >= 1.0 {
        (speedup, "faster")
    } else {
        (1.0 / speedup, "slower")
    };
    if short {
        format!("{factor:.1}× {word}")
    } else {
        format!("{factor:.1}× {word} ({sign}{:.0}%)", change.abs())
    }
}

/// The figure: the query groups of `latency.csv`.
pub struct CacheBenefit {
    groups: Vec<Group>,
}

impl CacheBenefit {
    pub fn new(rows: &[LatencyRow]) -> Result<Self> {
        let groups = groups(rows);
        if groups.is_empty() {
            bail!("cache_benefit: no query row with count > 0 to plot");
        }
        Ok(Self { groups })
    }
}

impl Figure for CacheBenefit {
    fn stem(&self) -> &'static str {
        "cache_benefit"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let area = titled(
            root,
            "Query latency (GET /products/{name}) with the cache on vs off",
        )?;
        let (_, height) = area.dim_in_pixel();
        let (plot, legend) = area.split_vertically(height.saturating_sub(50));

        let n = self.groups.len();
        let max = self
            .groups
            .iter()
            .flat_map(|g| [g.on_ms, g.off_ms])
            .flatten()
            .fold(0.0, f64::max);
        // Headroom for the value and speed-up labels over the bars.
        let top = if max > 0.0 { max * 1.3 } else { 1.0 };
        let labels: Vec<String> = self.groups.iter().map(|g| format!("p = {}", g.p)).collect();

        let mut chart = ChartBuilder::on(&plot)
            .caption(
                "Median (p50); over each pair: speed-up with the cache (median off ÷ median on)",
                (FONT, CAPTION_SIZE).into_font().color(&TEXT_COLOR),
            )
            .margin(12)
            .margin_right(28)
            .x_label_area_size(52)
            .y_label_area_size(72)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..top)?;
        house_mesh(chart.configure_mesh())
            .disable_x_mesh()
            .x_labels(n)
            .x_desc("order probability p")
            .y_desc("median query latency (ms)")
            .x_label_formatter(&|x| {
                let i = x.round();
                if i >= 0.0 && (x - i).abs() < 1e-6 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_labels(8)
            .draw()?;

        let value_style = (FONT, NOTE_SIZE)
            .into_font()
            .color(&TEXT_COLOR)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let speedup_style = (FONT, LABEL_SIZE)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let short = n > 6;
        for (i, group) in self.groups.iter().enumerate() {
            let x = i as f64;
            for (value, left, right, color) in [
                (group.on_ms, x - 0.36, x - 0.01, ON_COLOR),
                (group.off_ms, x + 0.01, x + 0.36, OFF_COLOR),
            ] {
                let Some(value) = value else { continue };
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(left, 0.0), (right, value)],
                    color.filled(),
                )))?;
                chart.draw_series(std::iter::once(
                    EmptyElement::at(((left + right) / 2.0, value))
                        + Text::new(format!("{value:.2} ms"), (0, -4), value_style.clone()),
                ))?;
            }
            if let Some(speedup) = group.speedup() {
                let bar_top = group.on_ms.unwrap_or(0.0).max(group.off_ms.unwrap_or(0.0));
                chart.draw_series(std::iter::once(
                    EmptyElement::at((x, bar_top))
                        + Text::new(
                            speedup_label(speedup, short),
                            (0, -26),
                            speedup_style.clone(),
                        ),
                ))?;
            }
        }

        legend_row(
            &legend,
            &[
                (Swatch::Bar(ON_COLOR), Cache::On.to_string()),
                (Swatch::Bar(OFF_COLOR), Cache::Off.to_string()),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(cache: Cache, p: f64, count: u64, p50: f64) -> LatencyRow {
        LatencyRow {
            cache,
            p,
            kind: Kind::Query,
            count,
            errors: 0,
            p50_ms: p50,
            p90_ms: p50,
            p99_ms: p50,
            mean_ms: p50,
        }
    }

    #[test]
    fn groups_pair_on_and_off_by_p() {
        let mut rows = vec![
            query(Cache::Off, 0.2, 10, 1.6),
            query(Cache::On, 0.2, 10, 0.4),
            query(Cache::On, 0.0, 10, 0.5),
            query(Cache::Off, 0.8, 0, 9.0),
        ];
        rows.push(LatencyRow {
            kind: Kind::Order,
            ..query(Cache::On, 0.8, 10, 7.0)
        });
        let groups = groups(&rows);
        assert_eq!(
            groups,
            vec![
                Group {
                    p: 0.0,
                    on_ms: Some(0.5),
                    off_ms: None
                },
                Group {
                    p: 0.2,
                    on_ms: Some(0.4),
                    off_ms: Some(1.6)
                },
            ]
        );
        assert_eq!(groups[0].speedup(), None);
        assert_eq!(groups[1].speedup(), Some(4.0));
    }

    #[test]
    fn speedup_labels() {
        assert_eq!(speedup_label(4.0, false), "4.0× faster (−75%)");
        assert_eq!(speedup_label(0.8, false), "1.2× slower (+25%)");
        assert_eq!(speedup_label(4.0, true), "4.0× faster");
    }
}
