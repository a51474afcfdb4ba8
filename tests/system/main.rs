//! Whole-system tests, one binary: every module starts real services (in this process or as
//! processes) on 127.0.0.1 and checks what a user of the store would.

mod broken;
mod browser;
mod catalog_frontend;
mod catalog_restart;
mod frontend_orders;
mod metrics;
mod nemesis;
mod partition;
mod processes;
mod raft_cluster;
mod retention;
mod selection;
mod surface;
