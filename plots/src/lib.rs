//! `plots`: turns the evaluation CSVs into figures, PNG and SVG, with `plotters`.
//!
//! `latency.csv` gives `latency_vs_p` and `cache_benefit`; `failover.csv` gives
//! `failover_timeline`. A missing or malformed CSV skips only the figures that need it and
//! is reported in [`Report::problems`].

pub mod cache;
pub mod failover;
pub mod input;
pub mod latency;
pub mod render;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Parser;

use crate::render::{Figure, write_figure};

/// Renders the evaluation figures from the evaluation CSVs.
#[derive(Debug, Clone, Parser)]
#[command(name = "plots", about)]
pub struct Config {
    /// Directory holding latency.csv and failover.csv (default: this crate's data/).
    #[arg(long, default_value_os_t = crate_dir().join("data"))]
    pub data: PathBuf,
    /// Directory the PNG and SVG files are written to (default: this crate's directory).
    #[arg(long, default_value_os_t = crate_dir())]
    pub out: PathBuf,
}

/// This crate's directory: the one cargo names when it runs the program (`cargo run -p
/// plots`), else the one it was built in. A build reused from another checkout of the same
/// workspace (cargo's fingerprints do not hold absolute paths) would otherwise write into that
/// checkout.
fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// What [`render_all`] did: the files written and what went wrong.
#[derive(Debug, Default)]
pub struct Report {
    pub written: Vec<PathBuf>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn figure(&mut self, figure: Result<impl Figure>, out: &Path) {
        match figure.and_then(|figure| write_figure(&figure, out)) {
            Ok(paths) => self.written.extend(paths),
            Err(e) => self.problems.push(format!("{e:#}")),
        }
    }
}

/// Renders every figure whose input is in `data` into `out`.
pub fn render_all(data: &Path, out: &Path) -> Report {
    let mut report = Report::default();
    match input::read_latency(&data.join("latency.csv")) {
        Ok(rows) => {
            report.figure(cache::CacheBenefit::new(&rows), out);
            report.figure(latency::LatencyVsP::new(rows), out);
        }
        Err(e) => report
            .problems
            .push(format!("skipped latency_vs_p and cache_benefit: {e:#}")),
    }
    match input::read_failover(&data.join("failover.csv")) {
        Ok(failover) => report.figure(failover::FailoverTimeline::new(failover), out),
        Err(e) => report
            .problems
            .push(format!("skipped failover_timeline: {e:#}")),
    }
    report
}
