//! The `client` binary: parse the flags, run the load and the verification, print the report.
//!
//! Exit code 0 when every request succeeded and every order verified, 1 otherwise (or when the
//! run could not happen), 2 for a usage error (clap's own).

use std::process::ExitCode;

use clap::Parser;
use client::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    match run(&config).await {
        Ok(report) => {
            println!("{report}");
            if report.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("client: error: {err}");
            ExitCode::FAILURE
        }
    }
}
