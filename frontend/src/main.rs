//! `frontend`: runs the front-end service until SIGTERM or Ctrl-C.

use clap::Parser;

// glibc's allocator showed up at a tenth of the CPU profile under load (small buffers freed
// on other threads); mimalloc handles that pattern far better.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config = frontend::Config::parse();
    api::server::run_service(config.serve.worker_threads(), config, frontend::serve)?;
    Ok(())
}
