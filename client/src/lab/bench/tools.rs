//! The programs a benchmark drives that are not the store's: wrk and etcd. Found on the
//! PATH, or, when this runs as root on a host with apt-get, installed from the distribution
//! (Debian's `wrk` and `etcd-server`); otherwise the error says what to install. And wrk
//! run to its end, or stopped when the run is interrupted.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::Out;
use crate::lab::process::{is_root, on_path};
use crate::lab::say::{Interrupted, interrupted};

/// A program and the Debian package that has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const WRK: Tool = Tool {
    program: "wrk",
    package: "wrk",
};

pub const ETCD: Tool = Tool {
    program: "etcd",
    package: "etcd-server",
};

/// The packages of the `tools` that `present` says are missing, in order.
pub fn missing(tools: &[Tool], present: impl Fn(&str) -> bool) -> Vec<&'static str> {
    tools
        .iter()
        .filter(|tool| !present(tool.program))
        .map(|tool| tool.package)
        .collect()
}

/// Makes sure every one of `tools` runs here: installs the missing ones with apt-get when
/// root (running `apt-get update` first if the install fails), or fails naming them.
pub fn ensure(tools: &[Tool], out: &Out) -> anyhow::Result<()> {
    let packages = missing(tools, on_path);
    if packages.is_empty() {
        return Ok(());
    }
    let install = format!("apt-get install -y {}", packages.join(" "));
    if !is_root() || !on_path("apt-get") {
        bail!("missing {}: {install}", packages.join(", "));
    }
    out.line(format!("installing {} with apt-get …", packages.join(" ")));
    let apt = |args: &[&str]| -> anyhow::Result<bool> {
        Ok(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run apt-get")?
            .success())
    };
    let install_args: Vec<&str> = ["install", "-y", "-qq"]
        .into_iter()
        .chain(packages.iter().copied())
        .collect();
    if apt(&install_args)? || (apt(&["update", "-qq"])? && apt(&install_args)?) {
        return Ok(());
    }
    bail!("cannot install {} ({install} failed)", packages.join(", "))
}

/// Starts `wrk ARGS…`, its output appended to `output`.
pub fn spawn_wrk(args: &[String], output: &Path) -> anyhow::Result<Child> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    Command::new("wrk")
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .context("cannot run wrk")
}

/// Waits for `child` to end (an error unless it succeeded); on an interrupt, stops it and
/// returns [`Interrupted`].
pub fn wait(mut child: Child, what: &str) -> anyhow::Result<()> {
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{what} failed ({status})");
            }
            return Ok(());
        }
        if interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Interrupted.into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `wrk ARGS…` to its end, its output appended to `output`.
pub fn wrk(args: &[String], output: &Path) -> anyhow::Result<()> {
    let child = spawn_wrk(args, output)?;
    wait(child, &format!("wrk {}", args.join(" ")))
        .with_context(|| format!("see {}", output.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_packages_of_missing_programs_are_named() {
        let present = |program: &str| program == "wrk";
        assert_eq!(missing(&[WRK, ETCD], present), vec!["etcd-server"]);
        assert_eq!(missing(&[WRK], present), Vec::<&str>::new());
        assert_eq!(missing(&[ETCD, WRK], |_| false), vec!["etcd-server", "wrk"]);
    }
}
