//! `toystore-state`: writes the store's final state (every replica's orders, the catalog's
//! stock accounts and reservation records) for `toystore-check`, once the store has settled.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::catalog::CatalogClient;
use api::client::ServiceClient;
use api::cluster::NodeAddrs;
use clap::Parser;

/// Reads every replica's orders and the catalog's stock, after waiting for every reservation
/// to settle and the replicas to converge, and writes them as JSON.
#[derive(Debug, Parser)]
#[command(name = "toystore-state")]
struct Args {
    /// The order replicas as ID=URL pairs.
    #[arg(long, env = "TOYSTORE_NODES", default_value = api::defaults::ORDER_NODES)]
    nodes: NodeAddrs,
    /// The catalog's base URL.
    #[arg(long, env = "TOYSTORE_CATALOG_URL", default_value = api::defaults::CATALOG_URL,
          value_parser = api::url::parse_base_url)]
    catalog: reqwest::Url,
    /// The cluster token (internal endpoints).
    #[arg(long, env = "TOYSTORE_CLUSTER_TOKEN", hide_env_values = true)]
    cluster_token: Option<String>,
    /// How long to wait for the store to settle, in seconds.
    #[arg(long, default_value = "60", value_parser = api::cli::seconds)]
    settle: Duration,
    /// Where to write the state.
    #[arg(long)]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = ServiceClient::new(
        Duration::from_secs(10),
        args.cluster_token.as_deref().map(Arc::from),
    );
    let catalog = CatalogClient::new(args.catalog, http.clone());
    let state = client::final_state::collect(&args.nodes, &catalog, &http, args.settle).await?;
    let json = serde_json::to_vec_pretty(&state)?;
    std::fs::write(&args.out, json)?;
    let orders: Vec<usize> = state.replicas.iter().map(|r| r.orders.len()).collect();
    println!(
        "wrote {}: orders per replica {orders:?}, {} toys, {} reservation records",
        args.out.display(),
        state.catalog.toys.len(),
        state.catalog.reservations.as_ref().map_or(0, Vec::len)
    );
    Ok(())
}
