//! `toystore-lab`: the lab's verification engine as one binary, growing out of `cluster/*.sh`
//! ([`client::lab`]). For now: the nemesis schedule `cluster/verify.sh` runs.

use std::collections::BTreeSet;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "toystore-lab", about = "The toy store's lab tooling")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints the fault of each round and a number that picks its target, one `FAULT PICK`
    /// line per round: every fault once before any twice, none twice in a row, the same for
    /// the same seed.
    Schedule {
        /// Seed of the schedule.
        #[arg(long)]
        seed: u64,
        /// Number of rounds.
        #[arg(long)]
        rounds: usize,
        /// The fault kinds to draw from (distinct).
        #[arg(required = true)]
        faults: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Schedule {
            seed,
            rounds,
            faults,
        } => {
            let distinct: BTreeSet<&String> = faults.iter().collect();
            anyhow::ensure!(
                distinct.len() == faults.len(),
                "a fault kind is named twice in {faults:?}"
            );
            for round in client::lab::schedule::schedule(&faults, rounds, seed) {
                println!("{} {}", round.fault, round.pick);
            }
            Ok(())
        }
    }
}
