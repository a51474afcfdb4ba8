//! The processes a verification starts and stops around its rounds: the load client in the
//! client namespace, the front-end restarted to switch its order cache, and the clean-up
//! that runs on every exit.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::Run;
use crate::lab::process;

impl Run<'_> {
    pub(super) fn start_client(&mut self, seed: u64) -> anyhow::Result<()> {
        let args = self
            .options
            .client_args(&self.hosts.layout, seed, &self.files.history);
        let child = self.hosts.spawn_in_client(
            &self.files.bin.join("client"),
            &args,
            &self.files.client_log,
        )?;
        self.say.line(format!(
            "load client started in the client namespace (pid {}, log {})",
            child.id(),
            self.files.client_log.display()
        ));
        self.client = Some(child);
        Ok(())
    }

    pub(super) fn client_running(&mut self) -> bool {
        self.client
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGINT (the sessions end after their current iteration, then the client verifies and
    /// writes its history), SIGKILL after `timeout`.
    pub(super) fn stop_client(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.client.take().context("no load client runs")?;
        process::signal(child.id(), "INT");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.say.line(format!(
                    "warning: the client still runs {}s after SIGINT: killing it",
                    timeout.as_secs()
                ));
                let _ = child.kill();
                return Ok(child.wait()?);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The environment of the front-end started next: its order cache on (the caller's
    /// capacity, or the front-end's default) or off (capacity 0).
    pub(super) fn use_order_cache(&mut self, on: bool) {
        match (on, &self.options.order_cache_capacity) {
            (false, _) => self.hosts.set("TOYSTORE_ORDER_CACHE_CAPACITY", "0"),
            (true, Some(capacity)) => self.hosts.set("TOYSTORE_ORDER_CACHE_CAPACITY", capacity),
            (true, None) => self.hosts.unset("TOYSTORE_ORDER_CACHE_CAPACITY"),
        }
        self.frontend_cache = Some(on);
    }

    /// Stops the front-end with SIGTERM (it answers the requests it has, so unlike a fault it
    /// leaves no order with an unknown outcome), kill -9 after 10 s, and starts it again with
    /// its order cache `on`. Not a fault: no nemesis event.
    pub(super) fn restart_frontend(&mut self, on: bool) -> anyhow::Result<()> {
        let pid_file = self.options.hosts_home().join("pids/frontend.pid");
        let pid = process::read_pid(&pid_file)?;
        process::signal(pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while process::lives(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if process::lives(pid) {
            self.hosts.run_words(&["kill", "frontend"])?;
        }
        self.use_order_cache(on);
        self.hosts.run_words(&["restart", "frontend"])?;
        self.hosts.wait_settled(self.options.settle_timeout)?;
        Ok(())
    }

    /// Stops the client and takes the hosts down (unless `--keep`); runs on every exit.
    pub(super) fn clean_up(&mut self) {
        if self.client_running() {
            self.say.line("stopping the load client …");
            let _ = self.stop_client(Duration::from_secs(10));
        }
        if !self.started {
            return;
        }
        if self.options.keep {
            self.say.line(
                "the hosts stay up (--keep): cluster/hosts.sh status; cluster/hosts.sh down when done",
            );
        } else if self.hosts.run_words(&["down"]).is_ok() {
            self.say.line(format!(
                "the hosts are down (data kept for inspection in {}/data)",
                self.options.hosts_home().display()
            ));
        } else {
            self.say.line(format!(
                "warning: cluster/hosts.sh down failed; see {}",
                self.files.nemesis_log.display()
            ));
        }
    }
}
