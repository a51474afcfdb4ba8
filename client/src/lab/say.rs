//! How a long lab run speaks and waits: time-stamped lines on stdout, a progress bar over the
//! rounds on a terminal (indicatif, hidden otherwise), and pauses that end early when the
//! operator interrupts the run (SIGINT or SIGTERM, noticed by [`watch_signals`]), so the run
//! can still stop its client and take its hosts down.

use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The run was interrupted (SIGINT or SIGTERM).
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Notes SIGINT and SIGTERM from now on (a thread of its own), for [`Say::pause`] to see.
/// Only the `toystore-lab` binary calls it: a test running the engine keeps its default
/// signal handling.
pub fn watch_signals() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (mut interrupt, mut terminate) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
        INTERRUPTED.store(true, Ordering::SeqCst);
    });
    Ok(())
}

/// Whether SIGINT or SIGTERM came since [`watch_signals`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The run's voice.
#[derive(Default)]
pub struct Say {
    bar: parking_lot::Mutex<Option<ProgressBar>>,
}

impl Say {
    /// One time-stamped line (above the bar, if one is drawn).
    pub fn line(&self, text: impl AsRef<str>) {
        let line = format!("[{}] {}", clock(SystemTime::now()), text.as_ref());
        self.print(&line);
    }

    /// Text as it is (a report).
    pub fn text(&self, text: &str) {
        self.print(text.trim_end_matches('\n'));
    }

    fn print(&self, text: &str) {
        match &*self.bar.lock() {
            Some(bar) => bar.suspend(|| println!("{text}")),
            None => println!("{text}"),
        }
    }

    /// A bar of `total` rounds on a terminal's stderr; a hidden one otherwise.
    pub fn progress(&self, total: u64) -> ProgressBar {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30.cyan/blue}] round {pos}/{len}  {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        *self.bar.lock() = Some(bar.clone());
        bar
    }

    /// Waits `duration`, or less when the run is interrupted ([`Interrupted`]).
    pub fn pause(&self, duration: Duration) -> Result<(), Interrupted> {
        let end = Instant::now() + duration;
        loop {
            if INTERRUPTED.load(Ordering::SeqCst) {
                return Err(Interrupted);
            }
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(Duration::from_millis(100)));
        }
    }
}

/// HH:MM:SS (UTC) of `at`.
fn clock(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_shows_the_time_of_day() {
        let at = UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3600 * 13 + 60 * 7 + 9);
        assert_eq!(clock(at), "13:07:09");
    }
}
