//! `toystore-lab verify` (and `cluster/verify.sh`, its wrapper): Jepsen-style verification of
//! the toy store on separate hosts.
//!
//! A fresh store on network namespaces (`cluster/hosts.sh up`), the load client in the client
//! namespace recording every operation, one fault per round from the seeded [`schedule`]
//! (every kind once before any repeats), each healed and the store left to settle; then the
//! final state of every replica and the catalog (`toystore-state`) and the checker over the
//! whole history ([`checker::run`]). The faults are [`nemesis`] values: they decide, this
//! module runs their `hosts.sh` commands and records their start and heal through the
//! checker's own [`Event`] type. A run that cannot go on ends with an error (the
//! [`Interrupted`](super::say::Interrupted) one when the operator stops it).
//!
//! [`schedule`]: super::schedule
//! [`nemesis`]: super::nemesis

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use checker::Event;
use checker::history::{Nemesis as NemesisEvent, Phase};

mod files;
mod processes;

use files::{RunFiles, concatenate};

use crate::history::unix_ms;
use crate::lab::hosts::{Hosts, Layout};
use crate::lab::nemesis::{self, HostFacts, Nemesis};
use crate::lab::options::{Break, REUSE_SESSIONS, VerifyOptions, on_off};
use crate::lab::process;
use crate::lab::say::Say;
use crate::lab::schedule::{Round, schedule};
use crate::lab::summary::{RoundRecord, closing};
use crate::lab::tree::copy_binaries;

/// The binaries a run copies and uses (`cluster/hosts.sh` reads `/status` with toystore-lab).
const BINARIES: [&str; 6] = [
    "catalog",
    "order-raft",
    "frontend",
    "client",
    "toystore-state",
    "toystore-lab",
];
/// Between the kills of a fault that hits more than once (bounce-frontend).
const BETWEEN_HITS: Duration = Duration::from_secs(1);

/// What a finished run found.
pub struct Outcome {
    pub report: checker::Report,
    pub rounds: Vec<RoundRecord>,
    /// With `--break`: the check the broken store must fail.
    pub expected_failure: Option<&'static str>,
}

impl Outcome {
    /// 0 no violation, 1 violations (the checker's verdict).
    pub fn exit_code(&self) -> u8 {
        if self.report.is_ok() { 0 } else { 1 }
    }
}

/// Runs a verification. Errors are runs that could not be completed (a setup failure, a store
/// that did not recover, [`Interrupted`]); violations are an [`Outcome`].
pub fn run(options: &VerifyOptions, say: &Say) -> anyhow::Result<Outcome> {
    let faults = options.nemeses()?;
    ensure!(
        process::is_root(),
        "verification needs root (it runs the store in network namespaces); run it with sudo"
    );
    let seed = options
        .seed
        .unwrap_or_else(|| rand::random::<u64>() % 1_000_000);
    let files = RunFiles::new(options.out_dir());
    files.reset()?;
    copy_binaries(&options.tree.bin_dir()?, &files.bin, &BINARIES)?;
    let names: Vec<String> = faults.iter().map(|f| f.name().to_owned()).collect();
    let plan = schedule(&names, options.rounds, seed);
    let hosts = options.hosts(Layout::of_hosts()?, &files.bin, files.nemesis_log.clone());

    say.line(format!(
        "verify: seed {seed}, {} rounds, faults of {}s, client 5 sessions {}",
        options.rounds,
        options.fault_secs,
        options.iterations_text()
    ));
    say.line(format!(
        "faults drawn from: {}; the front-end's order cache: {}",
        names.join(" "),
        options.order_cache_mode().name()
    ));
    if let Some(kind) = options.break_kind {
        say.line(format!(
            "BROKEN ON PURPOSE (--break {}): the checker must report {} failing",
            kind.name(),
            kind.check()
        ));
    }
    if let Some(retention) = options.retention {
        say.line(format!(
            "short retention: request ids forgotten after {retention}s (TOYSTORE_DEDUP_RETENTION_SECS), reservation timeout {} ms; {REUSE_SESSIONS} sessions re-send keys within and after it",
            options.reservation_timeout_ms()
        ));
    }
    say.line(format!("output in {}", files.dir.display()));

    let mut run = Run {
        options,
        say,
        files: &files,
        hosts,
        started: false,
        client: None,
        frontend_cache: None,
    };
    let result = run.rounds_and_check(&faults, &plan, seed);
    run.clean_up();
    result
}

/// A run in progress: what [`Run::clean_up`] must undo.
struct Run<'a> {
    options: &'a VerifyOptions,
    say: &'a Say,
    files: &'a RunFiles,
    hosts: Hosts,
    started: bool,
    client: Option<Child>,
    /// Whether the running front-end has its order cache on.
    frontend_cache: Option<bool>,
}

impl Run<'_> {
    /// Everything after the setup: the store, the client, the rounds, the final state and the
    /// check.
    fn rounds_and_check(
        &mut self,
        faults: &[Box<dyn Nemesis>],
        plan: &[Round],
        seed: u64,
    ) -> anyhow::Result<Outcome> {
        self.start_store(faults)?;
        self.start_client(seed)?;
        let client_started = Instant::now();
        self.say.pause(self.options.quiet())?;
        ensure!(
            self.client_running(),
            "the load client exited at once; see {}",
            self.files.client_log.display()
        );
        let rounds = self.rounds(faults, plan)?;
        self.let_late_resends_happen(client_started)?;
        self.finish_client()?;
        self.read_final_state()?;
        let outcome = self.check(rounds)?;
        self.say.text(&closing(
            &outcome.report,
            &outcome.rounds,
            outcome.expected_failure,
            seed,
            &format!("cluster/verify.sh {}", self.options.repeat_args(seed)),
            &self.files.dir,
            &self.options.hosts_home(),
        ));
        Ok(outcome)
    }

    /// A fresh store on the hosts, and every fault of the run available there.
    fn start_store(&mut self, faults: &[Box<dyn Nemesis>]) -> anyhow::Result<()> {
        let options = self.options;
        let say = self.say;
        self.hosts.run_words(&["down", "--wipe"])?;
        self.started = true;
        self.use_order_cache(options.order_cache_mode().on_in(1, options.rounds));
        say.line(format!(
            "starting the store (initial stock {}, restock every {}s) …",
            options.initial_stock, options.restock_secs
        ));
        let up = self.hosts.run_words(&["up"])?;
        let table: Vec<String> = service_table(&up)
            .iter()
            .map(|l| format!("  {l}"))
            .collect();
        say.text(&table.join("\n"));
        let host = HostFacts {
            root: true,
            nft: process::on_path("nft"),
        };
        for nemesis in faults {
            nemesis.available(host).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// The rounds of `plan`, each a fault injected and healed; their start and heal events in
    /// `nemesis.jsonl`, their terms in `terms.txt`.
    fn rounds(
        &mut self,
        faults: &[Box<dyn Nemesis>],
        plan: &[Round],
    ) -> anyhow::Result<Vec<RoundRecord>> {
        let options = self.options;
        let say = self.say;
        let mut events = BufWriter::new(File::create(&self.files.nemesis)?);
        let mut rounds = Vec::with_capacity(plan.len());
        let mut late = Vec::new();
        let bar = say.progress(plan.len() as u64);
        for (index, planned) in plan.iter().enumerate() {
            let number = index + 1;
            let nemesis = faults
                .iter()
                .find(|n| n.name() == planned.fault)
                .context("a scheduled fault is unknown")?;
            let cache = options.order_cache_mode().on_in(number, options.rounds);
            if Some(cache) != self.frontend_cache {
                self.restart_frontend(cache)
                    .with_context(|| format!("round {number}: could not restart the front-end"))?;
                say.line(format!(
                    "round {number}/{}: the front-end restarted (SIGTERM) with its order cache {}",
                    options.rounds,
                    on_off(cache)
                ));
                say.pause(options.quiet())?;
            }
            if !self.client_running() {
                late.push(number);
            }
            bar.set_message(nemesis.name());
            rounds.push(self.round(number, nemesis.as_ref(), planned.pick, cache, &mut events)?);
            bar.inc(1);
            say.pause(options.quiet())?;
        }
        bar.finish_and_clear();
        drop(events);
        let terms: String = rounds.iter().map(|r| r.terms_line() + "\n").collect();
        fs::write(&self.files.terms, terms)?;
        if !late.is_empty() {
            say.line(format!(
                "warning: the load client had already finished at round(s) {late:?}: those faults met no load (use a larger --iterations)"
            ));
        }
        Ok(rounds)
    }

    /// Round `number`: `nemesis` against the cluster as it is now, healed, and the store
    /// settled again.
    fn round(
        &mut self,
        number: usize,
        nemesis: &dyn Nemesis,
        pick: u32,
        cache: bool,
        events: &mut impl Write,
    ) -> anyhow::Result<RoundRecord> {
        let options = self.options;
        let say = self.say;
        let observed = self
            .hosts
            .observe()
            .with_context(|| format!("round {number}: no Raft leader before the fault"))?;
        {
            let injection = nemesis.inject(&observed, pick);
            let heal = nemesis.heal(&injection);
            let duration = nemesis.duration(options.fault());
            let hits = nemesis.hits();
            let mut healed_at = Instant::now();
            let mut heal_invoked = unix_ms();
            let event = |phase, invoke, complete| {
                Event::Nemesis(NemesisEvent {
                    invoke,
                    complete,
                    fault: nemesis.name().to_owned(),
                    target: Some(injection.target.clone()),
                    phase,
                })
            };
            for hit in 1..=hits {
                if hit > 1 {
                    say.pause(BETWEEN_HITS)?;
                }
                let t0 = unix_ms();
                self.hosts.run(&injection.command).with_context(|| {
                    format!("round {number}: could not inject {}", nemesis.name())
                })?;
                checker::write_event(&mut *events, &event(Phase::Start, t0, unix_ms()))?;
                let of = if hits > 1 {
                    format!(", {hit} of {hits}")
                } else {
                    String::new()
                };
                say.line(format!(
                    "round {number}/{}: {} on {} ({}){of}, for {}s, order cache {}",
                    options.rounds,
                    nemesis.name(),
                    injection.target,
                    injection.command,
                    duration.as_secs_f64(),
                    on_off(cache)
                ));
                say.pause(duration)?;
                heal_invoked = unix_ms();
                self.hosts.run(&heal).with_context(|| {
                    format!("round {number}: could not heal {} ({heal})", nemesis.name())
                })?;
                healed_at = Instant::now();
                // The last heal completes once the store has settled (below): until then the
                // fault's effects last (a leader to elect, orders held in the front-end's
                // retries), and the reads taken meanwhile are reads during the fault.
                if hit < hits {
                    checker::write_event(
                        &mut *events,
                        &event(Phase::Heal, heal_invoked, unix_ms()),
                    )?;
                }
            }
            let term_after = self.hosts.wait_settled(options.settle_timeout).with_context(|| {
                format!(
                    "round {number}: the store did not recover within {}s after healing {} on {} (see {} and the service logs)",
                    options.settle_timeout,
                    nemesis.name(),
                    injection.target,
                    self.files.nemesis_log.display()
                )
            })?;
            checker::write_event(&mut *events, &event(Phase::Heal, heal_invoked, unix_ms()))?;
            events.flush()?;
            let record = RoundRecord {
                round: number,
                fault: nemesis.name().to_owned(),
                target: injection.target.clone(),
                order_cache: cache,
                term_before: observed.term,
                term_after,
                settle: healed_at.elapsed(),
            };
            say.line(format!(
                "  healed ({heal}); settled {:.2}s after the heal at term {term_after} (term {} before the fault)",
                record.settle.as_secs_f64(),
                observed.term
            ));
            Ok(record)
        }
    }

    /// In short-retention mode the client runs at least 2 x retention + 10 s.
    fn let_late_resends_happen(&mut self, client_started: Instant) -> anyhow::Result<()> {
        let say = self.say;
        if let Some(retention) = self.options.retention {
            // A key adopted early is re-sent after the window about retention + 5 s later,
            // and its new order's window is probed once more about retention later still.
            let min_run = Duration::from_secs(2 * retention + 10);
            let ran = client_started.elapsed();
            if ran < min_run && self.client_running() {
                say.line(format!(
                    "short retention: letting the client run {}s more, so re-sends after the {retention}s window happen",
                    (min_run - ran).as_secs()
                ));
                say.pause(min_run - ran)?;
            }
        }
        Ok(())
    }

    /// Stops the client (SIGINT: it ends its sessions, verifies and writes its history) and
    /// shows its report.
    fn finish_client(&mut self) -> anyhow::Result<()> {
        let options = self.options;
        let say = self.say;
        say.line(format!(
            "all {} rounds done; stopping the load client (SIGINT) and waiting for its verification (at most {}s) …",
            options.rounds, options.client_timeout
        ));
        say.pause(options.quiet())?;
        let status = self.stop_client(Duration::from_secs(options.client_timeout))?;
        say.line(format!(
            "load client exited ({status}; non-zero is expected when faults caused request errors); its report:"
        ));
        let client_log = fs::read_to_string(&self.files.client_log).unwrap_or_default();
        let indented: Vec<String> = client_log
            .lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("    {l}")
                }
            })
            .collect();
        say.text(&indented.join("\n"));
        ensure!(
            fs::metadata(&self.files.history).is_ok_and(|m| m.len() > 0),
            "the client wrote no history ({} is missing or empty)",
            self.files.history.display()
        );
        Ok(())
    }

    /// `toystore-state` in the client namespace: every replica's orders, the catalog's stock
    /// and reservation records, in `state.json`.
    fn read_final_state(&self) -> anyhow::Result<()> {
        self.say
            .line("reading the final state of every replica and the catalog (toystore-state) …");
        let state_bin = self.files.bin.join("toystore-state");
        let words: Vec<String> = [
            "exec",
            "client",
            "timeout",
            "300",
            &state_bin.display().to_string(),
            "--nodes",
            &self.hosts.layout.nodes_arg(),
            "--catalog",
            &self.hosts.layout.catalog_url(),
            "--out",
            &self.files.state.display().to_string(),
        ]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
        self.hosts
            .run(&super::nemesis::HostsCommand(words))
            .context("toystore-state failed")?;
        Ok(())
    }

    /// The checker over the history and the nemesis events, against the final state.
    fn check(&self, rounds: Vec<RoundRecord>) -> anyhow::Result<Outcome> {
        concatenate(&[&self.files.history, &self.files.nemesis], &self.files.all)?;
        self.say
            .line("checking the history against the final state (checker) …");
        let (report, text) = checker::run(
            &self.files.all,
            &self.files.state,
            Some(&self.files.timeline),
            Some(&self.files.report),
        )?;
        fs::write(&self.files.check, &text)?;
        self.say.text(&text);
        Ok(Outcome {
            report,
            rounds,
            expected_failure: self.options.break_kind.map(Break::check),
        })
    }
}

/// The lines of `hosts.sh up`'s table of services.
fn service_table(up: &str) -> Vec<&str> {
    let mut lines = up
        .lines()
        .skip_while(|line| !line.starts_with("  service "));
    let mut table = Vec::new();
    for line in lines.by_ref().take(9) {
        table.push(line);
    }
    table
}

/// What the nemeses of this module are, for `--help`.
pub fn fault_names() -> String {
    nemesis::names().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_table_is_the_lines_from_its_heading() {
        let up = "starting …\n  service  ip  pid\n  catalog  10.77.0.10  5\n";
        assert_eq!(
            service_table(up),
            vec!["  service  ip  pid", "  catalog  10.77.0.10  5"]
        );
        assert!(service_table("nothing\n").is_empty());
    }
}
