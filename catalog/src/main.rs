//! `catalog`: runs the catalog service until SIGTERM or Ctrl-C.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::server::init_tracing();
    let config = catalog::Config::parse();
    let handle = catalog::serve(config).await?;
    api::server::run_until_signal(handle)
        .await
        .map_err(|reason| anyhow::anyhow!("stopped after a failure: {reason}"))
}
