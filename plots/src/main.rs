//! `plots`: renders the evaluation figures (`cargo run -p plots -- --data DIR --out DIR`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let config = plots::Config::parse();
    let report = plots::render_all(&config.data, &config.out);
    for path in &report.written {
        println!("wrote {}", path.display());
    }
    for problem in &report.problems {
        eprintln!("error: {problem}");
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
