//! `bench cache`: what the front-end's cache is worth. wrk -t2 -c32 on the cached
//! `GET /products/Tux` and on [`super::bare`], a bare axum handler serving the same body,
//! five alternating 5 s rounds, medians (this machine's background load moves a single 10 s
//! run by tens of percent, and would hit one server and not the other). Then every toy is
//! queried in turn, more toys than the cache holds, three times: every cache miss must cost
//! exactly one catalog read.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use api::client::ServiceClient;
use api::frontend::{FrontendClient, routes};
use api::url::route_url;
use reqwest::Url;

use super::bare::BareServer;
use super::tools::{WRK, ensure, wrk};
use super::{Bench, scrape};
use crate::lab::block_on;
use crate::lab::wrk::medians;

const ROUNDS: usize = 5;
/// The catalog's product reads, as its request-duration histogram counts them.
const CATALOG_PRODUCT_READS: &str =
    "catalog_http_request_duration_seconds_count{method=\"GET\",route=\"/products/{name}\"";
const CACHE_MISSES: &str = "frontend_cache_misses_total";

pub fn run(bench: &Bench, port_base: u16) -> anyhow::Result<bool> {
    ensure(&[WRK], &bench.out)?;
    bench.out.heading(format!(
        "cache: cached GET /products/Tux vs a bare axum handler (wrk -t2 -c32, {ROUNDS} alternating rounds of 5 s, medians)"
    ));
    let at = bench.fresh_cluster(&[])?;
    let bare_at = SocketAddr::from(([127, 0, 0, 1], port_base.saturating_add(50)));
    let _bare = BareServer::start(bare_at)?;
    let bare: Url = format!("http://{bare_at}").parse()?;
    let frontend = FrontendClient::new(
        at.frontend.clone(),
        ServiceClient::new(Duration::from_secs(5), None),
    );
    // Tux in the cache before the first round.
    block_on(frontend.product("Tux"))?.context("GET /products/Tux on the front-end")?;

    let output = bench.results.join("cache.txt");
    std::fs::write(&output, "")?;
    for _ in 0..ROUNDS {
        for (name, base) in [("bare axum", &bare), ("front-end (cached)", &at.frontend)] {
            let mut heading = OpenOptions::new().append(true).open(&output)?;
            writeln!(heading, "--- {name}")?;
            let url = route_url(base, routes::PRODUCT, &["Tux"]);
            let args = ["-t2", "-c32", "-d5s", "--latency", url.as_str()];
            wrk(&args.map(str::to_owned), &output)?;
        }
    }
    let text = std::fs::read_to_string(&output)?;
    bench
        .out
        .line(medians(&text).map_err(|e| anyhow::anyhow!("{}: {e}", output.display()))?);

    let (misses, reads) = block_on(misses_and_reads(&frontend, &at.frontend, &at.catalog))??;
    bench.out.line(format!(
        "cache misses: {misses}, catalog product reads: {reads}"
    ));
    Ok(misses > 0.0 && misses == reads)
}

/// Queries every toy three times in turn (more toys than the cache holds, so every query
/// misses) and counts the front-end's misses and the catalog's product reads meanwhile.
async fn misses_and_reads(
    frontend: &FrontendClient,
    frontend_url: &Url,
    catalog_url: &Url,
) -> anyhow::Result<(f64, f64)> {
    let counts = || async {
        (
            scrape(frontend_url)
                .await
                .value(CACHE_MISSES)
                .unwrap_or(0.0),
            scrape(catalog_url).await.sum(CATALOG_PRODUCT_READS),
        )
    };
    let before = counts().await;
    let toys = frontend.products().await.context("GET /products")?;
    anyhow::ensure!(!toys.is_empty(), "the front-end lists no toys");
    for _ in 0..3 {
        for toy in &toys {
            frontend
                .product(&toy.name)
                .await
                .with_context(|| format!("GET /products/{}", toy.name))?;
        }
    }
    let after = counts().await;
    Ok((after.0 - before.0, after.1 - before.1))
}
