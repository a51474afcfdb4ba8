//! Shared drawing machinery: the embedded font, colours, writing one figure as PNG and
//! SVG, log-axis ticks and the legend strip under each figure.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::input::Kind;

/// Size of every figure in pixels (PNG) and user units (SVG).
pub const SIZE: (u32, u32) = (1200, 700);

/// DejaVu Sans, drawn by `ab_glyph`: no system font libraries are needed.
static DEJAVU_SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// Registers the embedded font under the family names plotters asks for. Idempotent.
pub fn register_fonts() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        ["sans-serif", "serif", "monospace"].iter().all(|family| {
            plotters::style::register_font(family, FontStyle::Normal, DEJAVU_SANS).is_ok()
        })
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded DejaVu Sans font could not be loaded"))
    }
}

pub const FONT: &str = "sans-serif";
pub const TITLE_SIZE: u32 = 26;
pub const CAPTION_SIZE: u32 = 20;
pub const LABEL_SIZE: u32 = 17;
pub const TICK_SIZE: u32 = 15;
pub const NOTE_SIZE: u32 = 14;

/// One colour per request type (blue, orange, purple: green and red are for restarts
/// and kills in the failover figure).
pub fn kind_color(kind: Kind) -> RGBColor {
    match kind {
        Kind::Query => RGBColor(31, 119, 180),
        Kind::Order => RGBColor(255, 127, 14),
        Kind::Lookup => RGBColor(148, 103, 189),
    }
}

/// The mesh style every figure shares: fonts and colours of tick labels and axis
/// descriptions, faint major grid lines, no minor ones. Start a chart's mesh with it:
/// `house_mesh(chart.configure_mesh()).x_desc(…)…draw()`.
pub fn house_mesh<'a, 'b, X, Y, XT, YT, DB>(
    mut mesh: MeshStyle<'a, 'b, X, Y, DB>,
) -> MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
    DB: DrawingBackend,
{
    mesh.label_style((FONT, TICK_SIZE).into_font().color(&TEXT_COLOR))
        .axis_desc_style((FONT, LABEL_SIZE).into_font().color(&TEXT_COLOR))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT);
    mesh
}

pub const KILL_COLOR: RGBColor = RGBColor(214, 39, 40);
pub const RESTART_COLOR: RGBColor = RGBColor(44, 160, 44);
pub const TEXT_COLOR: RGBColor = RGBColor(30, 30, 30);

/// A figure that can draw itself on any plotters backend.
pub trait Figure {
    /// File name without extension.
    fn stem(&self) -> &'static str;

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// Writes `figure` as `STEM.png` and `STEM.svg` in `out_dir`; returns the paths written.
pub fn write_figure(figure: &impl Figure, out_dir: &Path) -> Result<Vec<PathBuf>> {
    register_fonts()?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("{}: cannot create directory", out_dir.display()))?;
    let png = out_dir.join(format!("{}.png", figure.stem()));
    let svg = out_dir.join(format!("{}.svg", figure.stem()));
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        figure
            .draw(&root)
            .with_context(|| format!("{}: drawing failed", png.display()))?;
        root.present()
            .with_context(|| format!("{}: cannot write", png.display()))?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        figure
            .draw(&root)
            .with_context(|| format!("{}: drawing failed", svg.display()))?;
        root.present()
            .with_context(|| format!("{}: cannot write", svg.display()))?;
    }
    Ok(vec![png, svg])
}

/// Fills the background and draws the title; returns the area below the title.
pub fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> Result<DrawingArea<DB, Shift>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let area = root.titled(title, (FONT, TITLE_SIZE).into_font().color(&TEXT_COLOR))?;
    Ok(area)
}

/// A y range and its tick values on a log axis, ticks on the 1-2-5 sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct LogAxis {
    pub low: f64,
    pub high: f64,
    pub ticks: Vec<f64>,
}

/// A log axis covering `[min, max]` (both > 0) with some headroom.
pub fn log_axis(min: f64, max: f64) -> LogAxis {
    let min = if min.is_finite() && min > 0.0 {
        min
    } else {
        0.01
    };
    let max = if max.is_finite() && max >= min {
        max
    } else {
        min
    };
    let steps = |lo: f64, hi: f64| {
        let first = lo.log10().floor() as i32 - 1;
        let last = hi.log10().ceil() as i32 + 1;
        (first..=last)
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| times_ten_to(m, e)))
            .collect::<Vec<_>>()
    };
    let candidates = steps(min, max);
    let low = candidates
        .iter()
        .copied()
        .filter(|v| *v <= min / 1.1)
        .fold(candidates[0], f64::max);
    let high = candidates
        .iter()
        .copied()
        .find(|v| *v >= max * 1.1)
        .unwrap_or(max * 10.0);
    let mut ticks: Vec<f64> = candidates
        .iter()
        .copied()
        .filter(|v| *v >= low * 0.999 && *v <= high * 1.001)
        .collect();
    if ticks.len() > 13 {
        // Wide ranges: decades only, so labels do not crowd.
        ticks.retain(|v| (v.log10() - v.log10().round()).abs() < 1e-9);
    }
    LogAxis { low, high, ticks }
}

/// `m` times ten to the `e`, rounded once (so 2e-1 is exactly the literal 0.2).
fn times_ten_to(m: f64, e: i32) -> f64 {
    if e >= 0 {
        m * 10f64.powi(e)
    } else {
        m / 10f64.powi(-e)
    }
}

/// "0.05", "0.5", "2", "500": as many decimals as the value needs.
pub fn format_ms(v: f64) -> String {
    if v <= 0.0 || !v.is_finite() {
        return "0".into();
    }
    let decimals = (-v.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// What a legend entry shows before its text.
#[derive(Debug, Clone, Copy)]
pub enum Swatch {
    /// A line, optionally dashed, with a filled or hollow circle marker (or none).
    Line {
        color: RGBColor,
        dashed: bool,
        marker: Option<bool>,
    },
    Dot(RGBColor),
    Cross(RGBColor),
    Bar(RGBColor),
}

const SWATCH_WIDTH: i32 = 38;

/// Draws `entries` in one centred row in `area` (a strip under the chart).
pub fn legend_row<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(Swatch, String)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let font = (FONT, LABEL_SIZE).into_font().color(&TEXT_COLOR);
    let gap = 34;
    let widths = entries
        .iter()
        .map(|(_, text)| {
            let (w, _) = area.estimate_text_size(text, &font)?;
            Ok(SWATCH_WIDTH + 8 + i32::try_from(w).unwrap_or(i32::MAX / 4))
        })
        .collect::<Result<Vec<i32>>>()?;
    let total: i32 = widths.iter().sum::<i32>() + gap * (widths.len() as i32 - 1).max(0);
    let (w, h) = area.dim_in_pixel();
    let mut x = ((w as i32 - total) / 2).max(4);
    let y = h as i32 / 2;
    let text_style = font.pos(Pos::new(HPos::Left, VPos::Center));
    for ((swatch, text), width) in entries.iter().zip(widths) {
        draw_swatch(area, *swatch, x, y)?;
        area.draw(&Text::new(
            text.as_str(),
            (x + SWATCH_WIDTH + 8, y),
            text_style.clone(),
        ))?;
        x += width + gap;
    }
    Ok(())
}

fn draw_swatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    swatch: Swatch,
    x: i32,
    y: i32,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mid = (x + SWATCH_WIDTH / 2, y);
    match swatch {
        Swatch::Line {
            color,
            dashed,
            marker,
        } => {
            let style = color.stroke_width(3);
            let points = vec![(x, y), (x + SWATCH_WIDTH, y)];
            if dashed {
                area.draw(&DashedPathElement::new(points, 8, 5, style))?;
            } else {
                area.draw(&PathElement::new(points, style))?;
            }
            match marker {
                Some(true) => area.draw(&Circle::new(mid, 5, color.filled()))?,
                Some(false) => {
                    area.draw(&Circle::new(mid, 5, WHITE.filled()))?;
                    area.draw(&Circle::new(mid, 5, color.stroke_width(2)))?;
                }
                None => {}
            }
        }
        Swatch::Dot(color) => area.draw(&Circle::new(mid, 5, color.filled()))?,
        Swatch::Cross(color) => area.draw(&Cross::new(mid, 6, color.stroke_width(3)))?,
        Swatch::Bar(color) => area.draw(&Rectangle::new(
            [(x + 6, y - 9), (x + SWATCH_WIDTH - 6, y + 9)],
            color.filled(),
        ))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_brackets_the_data_on_1_2_5_steps() {
        let axis = log_axis(0.41, 36.1);
        assert_eq!(axis.low, 0.2);
        assert_eq!(axis.high, 50.0);
        assert_eq!(axis.ticks.first(), Some(&0.2));
        assert_eq!(axis.ticks.last(), Some(&50.0));
        assert!(axis.ticks.contains(&1.0) && axis.ticks.contains(&10.0));

        let wide = log_axis(0.05, 20_000.0);
        assert!(wide.ticks.len() <= 8, "{:?}", wide.ticks);
        assert!(wide.low <= 0.05 && wide.high >= 20_000.0);
    }

    #[test]
    fn tick_labels_have_just_enough_decimals() {
        assert_eq!(format_ms(0.05), "0.05");
        assert_eq!(format_ms(0.5), "0.5");
        assert_eq!(format_ms(2.0), "2");
        assert_eq!(format_ms(500.0), "500");
    }
}
