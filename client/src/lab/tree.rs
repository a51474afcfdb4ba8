//! Where the lab finds what it runs: the repository and its cluster scripts, the release
//! binaries, and the copies of them a run works from.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

/// Where the lab finds the repository's scripts and the binaries it runs.
#[derive(Clone, Debug, Default, Args)]
pub struct Tree {
    /// The release binaries (default: this program's directory).
    #[arg(long, env = "TOYSTORE_BIN_DIR", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// The repository's cluster/ directory, where its scripts are (default: the one this
    /// program was built from).
    #[arg(long, env = "TOYSTORE_CLUSTER_DIR", value_name = "DIR")]
    pub cluster_dir: Option<PathBuf>,
}

impl Tree {
    /// `--cluster-dir`, else the `cluster/` of the repository the current directory is in,
    /// else the one this program was built from.
    fn cluster_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cluster_dir {
            return dir.clone();
        }
        let here = std::env::current_dir().ok();
        here.iter()
            .flat_map(|dir| dir.ancestors())
            .map(|dir| dir.join("cluster"))
            .find(|dir| dir.join("hosts.sh").is_file() && dir.join("lib.sh").is_file())
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster"))
    }

    /// The repository.
    pub fn repo(&self) -> PathBuf {
        let repo = self.cluster_dir().join("..");
        std::fs::canonicalize(&repo).unwrap_or(repo)
    }

    /// `cluster/NAME`.
    pub fn script(&self, name: &str) -> PathBuf {
        self.cluster_dir().join(name)
    }

    pub fn bin_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.bin_dir {
            Some(dir) => Ok(absolute(dir.clone())),
            None => {
                let exe = std::env::current_exe().context("cannot find this program's path")?;
                exe.parent()
                    .map(Path::to_path_buf)
                    .context("this program's path has no directory")
            }
        }
    }
}

/// Copies `binaries` from `from` into `to` (emptied first): a cargo build during a run cannot
/// swap a service's binary between a kill and its restart.
pub fn copy_binaries(from: &Path, to: &Path, binaries: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|bin| !from.join(bin).is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} lacks {} (build them with: cargo build --release --bins -p catalog -p frontend -p order-raft -p client)",
            from.display(),
            missing.join(", ")
        );
    }
    if to.exists() {
        std::fs::remove_dir_all(to).with_context(|| format!("cannot remove {}", to.display()))?;
    }
    std::fs::create_dir_all(to)?;
    for bin in binaries {
        std::fs::copy(from.join(bin), to.join(bin))
            .with_context(|| format!("cannot copy {bin} into {}", to.display()))?;
    }
    Ok(())
}

/// `path` from the current directory, when it is relative.
pub fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_copied_or_the_missing_ones_named() {
        let from = std::env::temp_dir().join(format!("toystore-lab-bins-{}", std::process::id()));
        let to = from.join("copy");
        std::fs::create_dir_all(&from).expect("a temporary directory");
        std::fs::write(from.join("catalog"), "x").expect("a file");
        let error = copy_binaries(&from, &to, &["catalog", "client", "frontend"])
            .expect_err("two are missing")
            .to_string();
        assert!(error.contains("lacks client, frontend"), "{error}");
        copy_binaries(&from, &to, &["catalog"]).expect("it copies");
        assert_eq!(
            std::fs::read_to_string(to.join("catalog")).ok().as_deref(),
            Some("x")
        );
        let _ = std::fs::remove_dir_all(from);
    }
}
