//! The lab's verification engine, moving out of `cluster/*.sh` into Rust (`toystore-lab`).
//!
//! What is here replaces the shell or Python it names, one piece at a time, so that each
//! decision the scripts made has one home that tests can reach:
//! - [`schedule`]: which fault each `cluster/verify.sh` round injects (was a Python heredoc).

pub mod schedule;
