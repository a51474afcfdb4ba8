//! `catalog`: runs the catalog service until SIGTERM or Ctrl-C.

use clap::Parser;

// glibc's allocator showed up at a tenth of the CPU profile under load (small buffers freed
// on other threads); mimalloc handles that pattern far better.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    api::server::service_runtime()?.block_on(async {
        api::server::init_tracing();
        let config = catalog::Config::parse();
        let handle = catalog::serve(config).await?;
        api::server::run_until_signal(handle)
            .await
            .map_err(|reason| anyhow::anyhow!("stopped after a failure: {reason}"))
    })
}
