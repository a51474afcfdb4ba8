//! Running the repository's cluster scripts from the engine: the command line and its output
//! appended to a run's log, its last lines in the error when it fails.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// How many of a failed script's last lines the error carries.
const TAIL_LINES: usize = 40;

/// Runs `command` (shown in the log as `$ shown`), its output appended to `log`; returns that
/// output.
pub fn run_logged(mut command: Command, shown: &str, log: &Path) -> anyhow::Result<String> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot append to {}", log.display()))?;
    writeln!(file, "\n$ {shown}")?;
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    file.write_all(text.as_bytes())?;
    if !output.status.success() {
        bail!(
            "{shown} failed ({}):\n    {}",
            output.status,
            tail(&text).join("\n    ")
        );
    }
    Ok(text)
}

fn tail(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_carries_the_last_lines_and_the_log_keeps_everything() {
        let log = std::env::temp_dir().join(format!("toystore-script-{}.log", std::process::id()));
        let mut command = Command::new("sh");
        command.args(["-c", "seq 1 100; echo oops >&2; exit 3"]);
        let error = run_logged(command, "count", &log).unwrap_err().to_string();
        assert!(
            error.starts_with("count failed (exit status: 3)"),
            "{error}"
        );
        assert!(
            error.contains("oops") && error.contains("\n    62") && !error.contains("\n    61\n"),
            "{error}"
        );
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(logged.starts_with("\n$ count\n1\n2\n"), "{logged}");
        let _ = std::fs::remove_file(log);
    }
}
