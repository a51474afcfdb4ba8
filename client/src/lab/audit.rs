//! After a run that drove the store only through its public API (`cluster/fuzz-api.sh`, which
//! lets schemathesis loose on it): is the store healthy, and does its stock add up? Every toy's
//! `initial + restocked - quantity` must equal the units its orders bought, once no
//! reservation is pending: a unit that left the stock without an order, or an order without
//! its units, is a bug the fuzzer's requests caused. `toystore-lab audit` prints the verdict.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api::catalog::{CatalogClient, ToyStock};
use api::client::ServiceClient;
use api::frontend::FrontendClient;
use api::url::route_url;
use reqwest::Url;

/// How long reservations may take to settle (confirmed at once, abandoned ones within ~10 s).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The toys whose stock does not add up, each with its sums: `initial + restocked - quantity`
/// against the units `bought` by orders.
pub fn stock_errors(stock: &[ToyStock], bought: &BTreeMap<String, u64>) -> Vec<String> {
    stock
        .iter()
        .filter_map(|toy| {
            let ordered = bought.get(&toy.name).copied().unwrap_or(0);
            let left_stock = (toy.initial + toy.restocked).checked_sub(u64::from(toy.quantity));
            (left_stock != Some(ordered)).then(|| {
                format!(
                    "{}: {} + {} restocked - {} left != {ordered} ordered",
                    toy.name, toy.initial, toy.restocked, toy.quantity
                )
            })
        })
        .collect()
}

/// Checks the store at `frontend` and `catalog` (whose `/stock` needs the cluster `token`);
/// the verdict's line, or what is wrong.
pub async fn audit(frontend: &Url, catalog: &Url, token: Option<&str>) -> anyhow::Result<String> {
    let http = ServiceClient::new(Duration::from_secs(10), token.map(Into::into));
    let store = FrontendClient::new(frontend.clone(), http.clone());
    let catalog = CatalogClient::new(catalog.clone(), http.clone());
    store.products().await.context("GET /products")?;
    let health = route_url(frontend, api::server::routes::HEALTH, &[]);
    http.get_json::<serde_json::Value>(&health)
        .await
        .context("the front-end's /health")?;
    catalog.health().await.context("the catalog's /health")?;

    let started = Instant::now();
    let stock = loop {
        let stock = catalog.stock().await.context("the catalog's /stock")?;
        if stock.iter().all(|toy| toy.pending == 0) {
            break stock;
        }
        if started.elapsed() > SETTLE_TIMEOUT {
            bail!(
                "reservations still pending after {} s: {stock:?}",
                SETTLE_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Every order, through the public API: numbers are dense from 0.
    let mut bought: BTreeMap<String, u64> = BTreeMap::new();
    let mut number = 0;
    loop {
        match store.lookup(number).await {
            Ok(order) => *bought.entry(order.name).or_default() += u64::from(order.quantity),
            Err(error) if error.is_not_found() => break,
            Err(error) => bail!("GET /orders/{number}: {error}"),
        }
        number += 1;
    }
    let wrong = stock_errors(&stock, &bought);
    if !wrong.is_empty() {
        bail!("the stock does not add up:\n  {}", wrong.join("\n  "));
    }
    Ok(format!(
        "store healthy; {number} orders, and every unit sold belongs to one of them"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(name: &str, initial: u64, restocked: u64, quantity: u32) -> ToyStock {
        ToyStock {
            name: name.to_owned(),
            initial,
            restocked,
            pending: 0,
            quantity,
            version: 1,
        }
    }

    #[test]
    fn every_unit_that_left_the_stock_must_belong_to_an_order() {
        let stock = [
            toy("Tux", 100, 10, 105),
            toy("Lego", 100, 0, 100),
            toy("Yo-yo", 5, 0, 2),
        ];
        let bought = BTreeMap::from([("Tux".to_owned(), 5), ("Yo-yo".to_owned(), 3)]);
        assert!(stock_errors(&stock, &bought).is_empty());
        let lost = BTreeMap::from([("Tux".to_owned(), 4), ("Yo-yo".to_owned(), 3)]);
        assert_eq!(
            stock_errors(&stock, &lost),
            ["Tux: 100 + 10 restocked - 105 left != 4 ordered"]
        );
        let oversold = [toy("Lego", 1, 0, 3)];
        assert_eq!(stock_errors(&oversold, &BTreeMap::new()).len(), 1);
    }
}
