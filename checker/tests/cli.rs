//! Runs the `toystore-check` binary on small files: exit codes, outputs, error messages.

use std::path::Path;
use std::process::{Command, Output};

const STATE: &str = r#"{"replicas":[
  {"id":1,"orders":[{"number":0,"request_id":"k-0","name":"Tux","quantity":1,"attempt":0}]},
  {"id":2,"orders":[{"number":0,"request_id":"k-0","name":"Tux","quantity":1,"attempt":0}]}],
 "catalog":{"toys":[{"name":"Tux","initial":100,"restocked":0,"quantity":99,"pending":0}],
  "reservations":[{"request_id":"k-0","attempt":0,"name":"Tux","quantity":1,"status":"confirmed"}]}}"#;

const GOOD: &str = r#"{"session":1,"op":"order","invoke":1000,"complete":1010,"outcome":"ok","key":"k-0","toy":"Tux","quantity":1,"number":0}
{"session":2,"op":"read","invoke":1020,"complete":1030,"outcome":"ok","number":0,"found":{"name":"Tux","quantity":1}}
"#;

const STALE: &str = r#"{"session":1,"op":"order","invoke":1000,"complete":1010,"outcome":"ok","key":"k-0","toy":"Tux","quantity":1,"number":0}
{"session":2,"op":"read","invoke":1020,"complete":1030,"outcome":"ok","number":0,"found":null}
"#;

fn run(dir: &Path, history: &str, extra: &[&str]) -> Output {
    let history_path = dir.join("history.jsonl");
    let state_path = dir.join("state.json");
    std::fs::write(&history_path, history).unwrap();
    std::fs::write(&state_path, STATE).unwrap();
    Command::new(env!("CARGO_BIN_EXE_toystore-check"))
        .arg("--history")
        .arg(&history_path)
        .arg("--state")
        .arg(&state_path)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_valid_history_exits_0_and_writes_html_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("t.html");
    let json = dir.path().join("r.json");
    let output = run(
        dir.path(),
        GOOD,
        &[
            "--html",
            html.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("OK: "),
        "{stdout}"
    );
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["violations"].as_array().map(Vec::len), Some(0));
}

#[test]
fn violations_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), STALE, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("non-linearizable-read"), "{stdout}");
    assert!(stdout.trim_end().ends_with("in 2 operations"), "{stdout}");
}

#[test]
fn a_malformed_line_exits_2_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &format!("{GOOD}{{\"op\":\"read\"\n"), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
}

#[test]
fn missing_files_and_flags_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_toystore-check"))
        .args([
            "--history",
            "/nonexistent/h.jsonl",
            "--state",
            "/nonexistent/s.json",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/h.jsonl"));
    let output = Command::new(env!("CARGO_BIN_EXE_toystore-check"))
        .args(["--history", "h.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
