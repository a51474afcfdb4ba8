//! `toystore-check`: checks a recorded history against the store's final state.
//! Exit 0 when no violation, 1 when there are violations, 2 for usage or unreadable input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Checks a toy-store history (JSON Lines) against the final state of replicas and catalog.
#[derive(Parser)]
#[command(name = "toystore-check", version)]
struct Args {
    /// The history recorded by the load client (JSON Lines).
    #[arg(long, value_name = "FILE.jsonl")]
    history: PathBuf,
    /// The final state of every replica and the catalog (JSON).
    #[arg(long, value_name = "FILE.json")]
    state: PathBuf,
    /// Also write a self-contained HTML page with a timeline.
    #[arg(long, value_name = "FILE.html")]
    html: Option<PathBuf>,
    /// Also write the report as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match checker::run(
        &args.history,
        &args.state,
        args.html.as_deref(),
        args.json.as_deref(),
    ) {
        Ok((report, text)) => {
            print!("{text}");
            ExitCode::from(if report.is_ok() { 0 } else { 1 })
        }
        Err(error) => {
            eprintln!("toystore-check: {error}");
            ExitCode::from(2)
        }
    }
}
