//! Progress while the sessions run: a bar on a terminal, a line every 10% otherwise.
//!
//! Logs and CI captures get readable lines instead of a bar's escape codes; `--quiet` turns
//! both off. All of it goes to stderr, so stdout carries only the report.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const BAR_TEMPLATE: &str =
    "{elapsed_precise} [{bar:40.cyan/blue}] {pos}/{len} iterations ({percent}%)  eta {eta}";

/// How many progress lines a non-terminal run prints.
const LINES_PER_RUN: u64 = 10;

pub enum Progress {
    Bar(ProgressBar),
    Lines { total: u64, done: AtomicU64 },
    Silent,
}

impl Progress {
    /// Picks the display for `total` iterations.
    pub fn new(total: u64, quiet: bool) -> Self {
        if quiet {
            Self::Silent
        } else if std::io::stderr().is_terminal() {
            let style = ProgressStyle::with_template(BAR_TEMPLATE)
                .map(|style| style.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(style);
            Self::Bar(bar)
        } else {
            Self::Lines {
                total,
                done: AtomicU64::new(0),
            }
        }
    }

    /// One iteration done.
    pub fn tick(&self) {
        match self {
            Self::Bar(bar) => bar.inc(1),
            Self::Lines { total, done } => {
                let done = done.fetch_add(1, Ordering::Relaxed) + 1;
                if crosses_step(done, *total) {
                    eprintln!(
                        "client: {done}/{total} iterations ({}%)",
                        done * 100 / (*total).max(1)
                    );
                }
            }
            Self::Silent => {}
        }
    }

    /// A status line (not shown under `--quiet`), printed above the bar if there is one.
    pub fn say(&self, text: &str) {
        match self {
            Self::Bar(bar) => bar.println(format!("client: {text}")),
            Self::Lines { .. } => eprintln!("client: {text}"),
            Self::Silent => {}
        }
    }

    /// The sessions are done: the bar goes away so the report starts on a clean screen.
    pub fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// True when `done` is the iteration that completes another tenth of `total` (or the last).
fn crosses_step(done: u64, total: u64) -> bool {
    if done == total {
        return true;
    }
    // Integer tenths: iteration `done` completes tenth k when floor(done*10/total) moves.
    let tenth = |n: u64| u128::from(n) * u128::from(LINES_PER_RUN) / u128::from(total.max(1));
    tenth(done) != tenth(done - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_about_ten_lines_per_run() {
        for total in [1, 7, 10, 95, 500, 1_000_003] {
            let lines = (1..=total)
                .filter(|&done| crosses_step(done, total))
                .count() as u64;
            assert!(lines <= LINES_PER_RUN.min(total), "{total}: {lines} lines");
            assert!(crosses_step(total, total));
        }
    }
}
