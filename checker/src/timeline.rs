//! The HTML report: a self-contained page with an inline SVG timeline of the history.
//!
//! x is time, one row per session; each operation is a bar from invoke to complete coloured
//! by op and outcome; nemesis intervals are shaded bands labelled with their fault; the
//! operations involved in a violation are outlined in red. Hovering a bar shows its
//! `<title>`; no script at all.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::history::{Event, Outcome, Phase};
use crate::report::Report;

const LEFT: f64 = 90.0;
const PLOT_WIDTH: f64 = 1400.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 60.0;
const ROW: f64 = 14.0;
const AXIS: f64 = 30.0;

/// The fill of a bar: one hue per op, lighter for `fail`, grey-tinted for `unknown`.
fn colour(op: &str, outcome: Outcome) -> &'static str {
    match (op, outcome) {
        ("query", Outcome::Ok) => "#4e79a7",
        ("query", Outcome::Fail) => "#a0c4e8",
        ("query", Outcome::Unknown) => "#8c96a3",
        ("order", Outcome::Ok) => "#59a14f",
        ("order", Outcome::Fail) => "#b3dfa8",
        ("order", Outcome::Unknown) => "#8f9e8b",
        ("read", Outcome::Ok) => "#b07aa1",
        ("read", Outcome::Fail) => "#e3c3da",
        ("read", Outcome::Unknown) => "#a3949f",
        _ => "#cccccc",
    }
}

const NEMESIS_FILL: &str = "#f28e2b";

/// Escapes text for HTML and SVG.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A nemesis interval: from a start's invoke to the matching heal's completion.
struct Band {
    from: f64,
    to: f64,
    label: String,
}

fn bands(history: &[Event], end: f64) -> Vec<Band> {
    let mut open: BTreeMap<(String, Option<String>), Vec<f64>> = BTreeMap::new();
    let mut bands = Vec::new();
    for event in history {
        let Event::Nemesis(n) = event else {
            continue;
        };
        let key = (n.fault.clone(), n.target.clone());
        let label = match &n.target {
            Some(target) => format!("{} {target}", n.fault),
            None => n.fault.clone(),
        };
        match n.phase {
            Phase::Start => open.entry(key).or_default().push(n.invoke),
            Phase::Heal => {
                if let Some(from) = open.get_mut(&key).and_then(Vec::pop) {
                    bands.push(Band {
                        from,
                        to: n.complete,
                        label,
                    });
                }
            }
        }
    }
    for ((fault, target), starts) in open {
        for from in starts {
            let label = match &target {
                Some(target) => format!("{fault} {target} (never healed)"),
                None => format!("{fault} (never healed)"),
            };
            bands.push(Band {
                from,
                to: end,
                label,
            });
        }
    }
    bands.sort_by(|a, b| a.from.total_cmp(&b.from));
    bands
}

/// Renders the self-contained HTML page for `history` and its `report`.
pub fn render_html(history: &[Event], report: &Report) -> String {
    let start = history
        .iter()
        .map(Event::invoke)
        .fold(f64::INFINITY, f64::min);
    let end = history
        .iter()
        .map(Event::complete)
        .fold(f64::NEG_INFINITY, f64::max);
    let (start, end) = if start <= end {
        (start, end)
    } else {
        (0.0, 1.0)
    };
    let span = (end - start).max(1.0);
    let x = |t: f64| LEFT + (t - start) / span * PLOT_WIDTH;

    let sessions: BTreeSet<u64> = history.iter().filter_map(Event::session).collect();
    let row_of: BTreeMap<u64, usize> = sessions.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let rows_height = ROW * sessions.len().max(1) as f64;
    let width = LEFT + PLOT_WIDTH + RIGHT;
    let height = TOP + rows_height + AXIS;
    let involved = report.involved_ops();

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">"#
    );
    // Nemesis bands behind everything, labels staggered so overlapping ones stay legible.
    for (i, band) in bands(history, end).iter().enumerate() {
        let (x0, x1) = (x(band.from), x(band.to));
        let _ = writeln!(
            svg,
            r##"<g class="nemesis"><rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{NEMESIS_FILL}" fill-opacity="0.18"><title>{}</title></rect><text x="{:.1}" y="{:.1}" fill="#b85c00">{}</text></g>"##,
            TOP - 4.0,
            (x1 - x0).max(1.0),
            rows_height + 8.0,
            escape(&band.label),
            x0 + 2.0,
            TOP - 8.0 - 11.0 * (i % 4) as f64,
            escape(&band.label),
        );
    }
    // One row per session.
    for (&session, &row) in &row_of {
        let y = TOP + ROW * row as f64;
        let shade = if row % 2 == 0 { "#f7f7f7" } else { "#ffffff" };
        let _ = writeln!(
            svg,
            r#"<g class="session" data-session="{session}"><rect x="{LEFT}" y="{y:.1}" width="{PLOT_WIDTH}" height="{ROW}" fill="{shade}" fill-opacity="0.6"/><text x="{:.1}" y="{:.1}" text-anchor="end">session {session}</text></g>"#,
            LEFT - 6.0,
            y + ROW - 3.0,
        );
    }
    // Bars; the ones involved in a violation last, so their outline is on top.
    let mut order: Vec<usize> = (0..history.len()).collect();
    order.sort_by_key(|i| involved.contains(i));
    for i in order {
        let event = &history[i];
        let (Some(session), Some(outcome)) = (event.session(), event.outcome()) else {
            continue;
        };
        let Some(&row) = row_of.get(&session) else {
            continue;
        };
        let (x0, x1) = (x(event.invoke()), x(event.complete()));
        let y = TOP + ROW * row as f64 + 2.0;
        let stroke = if involved.contains(&i) {
            r##" stroke="#e00000" stroke-width="2" class="violation""##
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"{stroke}><title>op #{i}: {}</title></rect>"#,
            (x1 - x0).max(1.5),
            ROW - 4.0,
            colour(event.op_name(), outcome),
            escape(&event.describe()),
        );
    }
    // Time axis: ten ticks, seconds since the first invoke.
    let axis_y = TOP + rows_height + 4.0;
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#444"/>"##,
        LEFT + PLOT_WIDTH
    );
    for tick in 0..=10 {
        let t = span * f64::from(tick) / 10.0;
        let tx = LEFT + PLOT_WIDTH * f64::from(tick) / 10.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{tx:.1}" y1="{axis_y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#444"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{:.1} s</text>"##,
            axis_y + 4.0,
            axis_y + 16.0,
            t / 1000.0
        );
    }
    svg.push_str("</svg>\n");

    let mut legend = String::new();
    for op in ["query", "order", "read"] {
        for outcome in [Outcome::Ok, Outcome::Fail, Outcome::Unknown] {
            let _ = write!(
                legend,
                r#"<span class="key"><span class="swatch" style="background:{}"></span>{op} {}</span>"#,
                colour(op, outcome),
                outcome.as_str()
            );
        }
    }
    let _ = write!(
        legend,
        r#"<span class="key"><span class="swatch" style="background:{NEMESIS_FILL};opacity:0.35"></span>nemesis fault</span><span class="key"><span class="swatch" style="border:2px solid #e00000"></span>involved in a violation</span>"#
    );

    let verdict_class = if report.is_ok() { "ok" } else { "bad" };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>toystore-check: {summary}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
.verdict.ok {{ color: #1a7f1a; }}
.verdict.bad {{ color: #c00000; }}
.legend {{ margin: 0.5em 0; }}
.key {{ margin-right: 1.2em; white-space: nowrap; display: inline-block; }}
.swatch {{ display: inline-block; width: 14px; height: 10px; margin-right: 4px; vertical-align: middle; box-sizing: border-box; }}
.timeline {{ overflow-x: auto; border: 1px solid #ddd; }}
pre {{ background: #f7f7f7; padding: 0.5em; overflow-x: auto; }}
</style>
</head>
<body>
<h1>toystore-check</h1>
<p class="verdict {verdict_class}">{summary}</p>
<div class="legend">{legend}</div>
<div class="timeline">
{svg}</div>
<h2>Report</h2>
<pre>{text}</pre>
</body>
</html>
"#,
        summary = escape(&report.summary),
        text = escape(&report.text(history)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check;
    use crate::checks::testkit::*;

    #[test]
    fn html_has_an_svg_with_a_row_per_session_bands_and_red_outlines() {
        let history = [
            nemesis((0.0, 1.0), "kill-leader", Phase::Start),
            ok_order(1, (0.0, 10.0), "k-0", 0),
            read(2, (11.0, 12.0), 0, None), // stale: outlined in red
            query(7, (2.0, 3.0), "Tux <&>", 1),
            nemesis((20.0, 21.0), "kill-leader", Phase::Heal),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        assert!(!report.is_ok());
        let html = render_html(&history, &report);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<svg").count(), 1);
        assert_eq!(html.matches(r#"<g class="session""#).count(), 3, "{html}");
        for session in [1, 2, 7] {
            assert!(html.contains(&format!(r#"data-session="{session}""#)));
        }
        assert_eq!(html.matches(r#"<g class="nemesis">"#).count(), 1);
        assert!(html.contains("kill-leader node-1"));
        // the order and the stale read are outlined, the query is not
        assert_eq!(html.matches(r#"class="violation""#).count(), 2);
        assert!(html.contains("Tux &lt;&amp;&gt;"));
        assert!(!html.contains("Tux <&>"));
        assert!(!html.contains("<script"));
        assert!(html.contains("VIOLATIONS: 1"));
    }

    #[test]
    fn an_empty_history_still_renders() {
        let report = check(&[], &state(&[]));
        let html = render_html(&[], &report);
        assert!(html.contains("<svg"));
        assert!(html.contains("OK: 0 operations"));
    }
}
