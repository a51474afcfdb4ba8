//! The files a verification writes in its output directory, and the one it makes of two.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The files of a run, in its output directory.
pub(super) struct RunFiles {
    pub(super) dir: PathBuf,
    pub(super) bin: PathBuf,
    pub(super) history: PathBuf,
    pub(super) nemesis: PathBuf,
    pub(super) all: PathBuf,
    pub(super) state: PathBuf,
    pub(super) report: PathBuf,
    pub(super) timeline: PathBuf,
    pub(super) check: PathBuf,
    pub(super) client_log: PathBuf,
    pub(super) nemesis_log: PathBuf,
    pub(super) terms: PathBuf,
}

impl RunFiles {
    pub(super) fn new(dir: PathBuf) -> Self {
        let at = |name: &str| dir.join(name);
        Self {
            bin: at("bin"),
            history: at("history.jsonl"),
            nemesis: at("nemesis.jsonl"),
            all: at("all.jsonl"),
            state: at("state.json"),
            report: at("report.json"),
            timeline: at("timeline.html"),
            check: at("check.txt"),
            client_log: at("client.log"),
            nemesis_log: at("nemesis.log"),
            terms: at("terms.txt"),
            dir,
        }
    }

    /// Empties the run's files (the directory keeps anything else).
    pub(super) fn reset(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        for file in [
            &self.history,
            &self.nemesis,
            &self.all,
            &self.state,
            &self.report,
            &self.timeline,
            &self.check,
            &self.client_log,
            &self.nemesis_log,
            &self.terms,
        ] {
            match fs::remove_file(file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("cannot remove {}", file.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `out` made of `parts`, one after another.
pub(super) fn concatenate(parts: &[&Path], out: &Path) -> anyhow::Result<()> {
    let mut all = BufWriter::new(File::create(out)?);
    for part in parts {
        all.write_all(&fs::read(part).with_context(|| format!("cannot read {}", part.display()))?)?;
    }
    all.flush()?;
    Ok(())
}
