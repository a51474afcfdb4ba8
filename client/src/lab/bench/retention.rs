//! `bench retention`: the store at its peak order rate (wrk, 64 connections, through the
//! front-end) for 3 minutes with the dedup retention at 20 s. What the catalog and every
//! replica still store (reservation records, pending reservations, request ids and abandons
//! kept for dedup), sampled every 15 s, must stay bounded while the orders grow: the verdict
//! is [`bounded`].

use std::time::{Duration, Instant};

use anyhow::Context;
use api::client::ServiceClient;
use api::order::ReplicaClient;

use super::orders::ENDLESS_STOCK;
use super::tools::{WRK, ensure, spawn_wrk, wait};
use super::{Bench, scrape};
use crate::lab::block_on;
use crate::lab::local::Addresses;
use crate::lab::say::Say;

const RETENTION_SECS: u64 = 20;
const SECONDS: u64 = 180;
const EVERY: Duration = Duration::from_secs(15);

/// What the store held at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub at_secs: u64,
    pub orders: Option<u64>,
    pub catalog_records: f64,
    pub catalog_pending: f64,
    /// Per replica: request ids and abandons stored.
    pub replicas: Vec<(f64, f64)>,
}

impl Sample {
    /// The most records any one store holds.
    fn stored(&self) -> f64 {
        self.replicas
            .iter()
            .flat_map(|(requests, abandons)| [*requests, *abandons])
            .chain([self.catalog_records])
            .fold(0.0, f64::max)
    }

    fn line(&self) -> String {
        let replicas: Vec<String> = self
            .replicas
            .iter()
            .map(|(requests, abandons)| format!("{requests}/{abandons}"))
            .collect();
        format!(
            "{:>6} {:>10} {:>16} {:>18} {}",
            self.at_secs,
            self.orders.map_or("?".to_owned(), |n| n.to_string()),
            self.catalog_records,
            self.catalog_pending,
            replicas.join(" ")
        )
    }
}

/// Whether nothing is kept much longer than the retention `retention_secs` (R): from 3R into
/// the run on, no store holds more records than the orders placed in the last 3R (the
/// replicas keep R of them, the catalog R + R/2); a store that kept everything would hold all
/// the orders. Holds only if the orders grew and at least one sample was that late.
pub fn bounded(samples: &[Sample], retention_secs: u64) -> bool {
    let window = 3 * retention_secs;
    let mut judged = 0;
    for (index, sample) in samples.iter().enumerate() {
        let earlier = samples[..index]
            .iter()
            .rev()
            .find(|then| then.at_secs + window <= sample.at_secs);
        let (Some(now), Some(then)) = (sample.orders, earlier.and_then(|then| then.orders)) else {
            continue;
        };
        if now <= then || sample.stored() > (now - then) as f64 {
            return false;
        }
        judged += 1;
    }
    judged > 0
}

pub fn run(bench: &Bench) -> anyhow::Result<bool> {
    ensure(&[WRK], &bench.out)?;
    bench.out.heading(format!(
        "retention: peak order rate for {SECONDS}s with the dedup retention at {RETENTION_SECS}s; records stored, every {}s",
        EVERY.as_secs()
    ));
    let retention = RETENTION_SECS.to_string();
    let reservation_timeout = (RETENTION_SECS * 250).to_string();
    let at = bench.fresh_cluster(&[
        ("TOYSTORE_INITIAL_STOCK", ENDLESS_STOCK),
        ("TOYSTORE_DEDUP_RETENTION_SECS", &retention),
        ("TOYSTORE_RESERVATION_TIMEOUT_MS", &reservation_timeout),
    ])?;
    let output = bench.results.join("retention-wrk.out");
    std::fs::write(&output, "")?;
    let script = bench.cluster.tree.script("bench/requests.lua");
    let args: Vec<String> = [
        "-t2",
        "-c64",
        &format!("-d{SECONDS}s"),
        "--timeout",
        "5s",
        "-s",
        &script.display().to_string(),
        at.frontend.as_str(),
        "--",
        "order",
        "Tux",
        "Lego",
        "Barbie",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut load = spawn_wrk(&args, &output)?;
    bench.out.line(format!(
        "{:>6} {:>10} {:>16} {:>18} replica requests_stored / abandons_stored",
        "t_s", "orders", "catalog_records", "catalog_pending"
    ));
    let started = Instant::now();
    let say = Say::default();
    let mut samples = Vec::new();
    while load.try_wait()?.is_none() {
        let sample = block_on(sample(&at, started.elapsed().as_secs()))?;
        bench.out.line(sample.line());
        samples.push(sample);
        if let Err(interrupted) = say.pause(EVERY) {
            let _ = load.kill();
            let _ = load.wait();
            return Err(interrupted.into());
        }
    }
    wait(load, "wrk").with_context(|| format!("see {}", output.display()))?;
    let text = std::fs::read_to_string(&output)?;
    for line in text
        .lines()
        .filter(|line| line.contains("Requests/sec") || line.contains("Non-2xx"))
    {
        bench.out.line(line);
    }
    let verdict = bounded(&samples, RETENTION_SECS);
    bench.out.line(if verdict {
        "what the store keeps stayed bounded while the orders grew"
    } else {
        "FAILED: what the store keeps grew with the orders (or the orders did not grow)"
    });
    Ok(verdict)
}

async fn sample(at: &Addresses, at_secs: u64) -> Sample {
    let http = ServiceClient::new(Duration::from_secs(2), None);
    let mut orders = None;
    if let Some((_, first)) = at.nodes.iter().next() {
        let replica = ReplicaClient::new(first.clone(), http);
        orders = replica.status().await.ok().map(|status| status.orders);
    }
    let catalog = scrape(&at.catalog).await;
    let mut replicas = Vec::new();
    for (_, url) in at.nodes.iter() {
        let node = scrape(url).await;
        replicas.push((
            node.value("order_requests_stored").unwrap_or(0.0),
            node.value("order_abandons_stored").unwrap_or(0.0),
        ));
    }
    Sample {
        at_secs,
        orders,
        catalog_records: catalog.value("catalog_reservation_records").unwrap_or(0.0),
        catalog_pending: catalog.value("catalog_pending_reservations").unwrap_or(0.0),
        replicas,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples every 15 s at 4 000 orders/s, each store holding `stored(t)` records.
    fn run(stored: impl Fn(u64) -> f64) -> Vec<Sample> {
        (0..12)
            .map(|i| {
                let at_secs = i * 15;
                Sample {
                    at_secs,
                    orders: Some(at_secs * 4_000),
                    catalog_records: stored(at_secs) / 2.0,
                    catalog_pending: 0.0,
                    replicas: vec![(stored(at_secs), 0.0), (stored(at_secs) - 1.0, 1.0)],
                }
            })
            .collect()
    }

    #[test]
    fn a_store_that_keeps_the_last_retention_windows_is_bounded() {
        // The replicas keep 20 s of orders, the catalog 30 s.
        let samples = run(|t| (t.min(20) * 4_000) as f64);
        assert!(bounded(&samples, 20));
    }

    #[test]
    fn a_store_that_keeps_every_order_is_not() {
        let samples = run(|t| (t * 4_000) as f64);
        assert!(!bounded(&samples, 20));
        // Nor one that forgets only after four windows.
        let samples = run(|t| (t.min(80) * 4_000) as f64);
        assert!(!bounded(&samples, 20));
    }

    #[test]
    fn without_growing_orders_or_a_late_enough_sample_nothing_is_shown() {
        let mut flat = run(|_| 5.0);
        for sample in &mut flat {
            sample.orders = Some(10_000);
        }
        assert!(!bounded(&flat, 20));
        let short = run(|t| (t.min(20) * 4_000) as f64);
        assert!(!bounded(&short[..4], 20));
        assert!(bounded(&short[..5], 20));
    }
}
