//! `frontend`: runs the front-end service until SIGTERM or Ctrl-C.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::server::init_tracing();
    let config = frontend::Config::parse();
    let handle = frontend::serve(config).await?;
    api::server::run_until_signal(handle)
        .await
        .map_err(|reason| anyhow::anyhow!("stopped after a failure: {reason}"))
}
