//! Processes by pid, as the engine sees them: signals sent with kill(1), their state from
//! `/proc`, and what this host lets the engine do (root, a program on the PATH).

use std::fs;
use std::path::Path;
use std::process::Command;

/// Sends SIG`name` to `pid` with kill(1); a process already gone is not an error.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status();
}

/// The pid a service's pid file (`HOME/pids/NAME.pid`) holds.
pub fn read_pid(pid_file: &Path) -> anyhow::Result<u32> {
    use anyhow::Context;
    fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .with_context(|| format!("no pid in {}", pid_file.display()))
}

/// Whether `pid` exists and has not exited (an exited child stays a zombie until reaped).
pub fn lives(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| state(&status))
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// The one-letter state in a `/proc/PID/status` text.
pub fn state(status: &str) -> Option<char> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("State:"))
        .and_then(|rest| rest.trim_start().chars().next())
}

/// Root: network namespaces, nft and signals to their processes need it. `/proc/self` is
/// owned by the effective user.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        || Path::new("/usr/sbin").join(program).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_letter_comes_from_the_state_line() {
        let status = "Name:\tfrontend\nUmask:\t0022\nState:\tT (stopped)\nTgid:\t7\n";
        assert_eq!(state(status), Some('T'));
        assert_eq!(state("Name: x\n"), None);
    }

    #[test]
    fn this_process_lives_and_a_pid_past_the_limit_does_not() {
        assert!(lives(std::process::id()));
        assert!(!lives(u32::MAX));
    }
}
