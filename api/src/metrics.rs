//! Reading a service's `/metrics` (Prometheus text), for the lab's benchmarks and the system
//! tests: the scrape, one series' value, and the sum of a metric's series.

use crate::client::{CallError, ServiceClient};
use crate::server::routes::METRICS;
use crate::url::route_url;

/// What a service's `/metrics` served.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub text: String,
}

impl Scrape {
    /// `GET BASE/metrics`.
    pub async fn fetch(http: &ServiceClient, base: &reqwest::Url) -> Result<Self, CallError> {
        let url = route_url(base, METRICS, &[]);
        let shown = format!("GET {url}");
        let answer = http
            .get(url.as_str())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| CallError::from_reqwest(&shown, err))?;
        let text = answer
            .text()
            .await
            .map_err(|err| CallError::from_reqwest(&shown, err))?;
        Ok(Self { text })
    }

    /// The value of one series, named as it is exported (`name` or `name{label="…"}`).
    pub fn value(&self, series: &str) -> Option<f64> {
        self.text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// The sum of every series whose line starts with `prefix` (a metric's name sums all its
    /// labels; `name{a="x"` the series with that first label); 0 when none is exported.
    pub fn sum(&self, prefix: &str) -> f64 {
        self.text
            .lines()
            .filter(|line| !line.starts_with('#') && line.starts_with(prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP order_forwarded_total Orders forwarded to the leader.
# TYPE order_forwarded_total counter
order_forwarded_total{route=\"place\"} 3
order_forwarded_total{route=\"lookup\"} 4
order_forwarded_total_extra 100
order_requests_stored 12
catalog_http_request_duration_seconds_count{method=\"GET\",route=\"/products/{name}\"} 54
catalog_http_request_duration_seconds_count{method=\"POST\",route=\"/reserve\"} 9
";

    fn scrape() -> Scrape {
        Scrape { text: TEXT.into() }
    }

    #[test]
    fn a_value_is_the_series_named_exactly() {
        assert_eq!(scrape().value("order_requests_stored"), Some(12.0));
        assert_eq!(scrape().value("order_requests"), None);
        assert_eq!(scrape().value("order_abandons_stored"), None);
    }

    #[test]
    fn a_sum_adds_the_series_a_prefix_starts() {
        let scrape = scrape();
        assert_eq!(scrape.sum("order_forwarded_total{"), 7.0);
        assert_eq!(
            scrape.sum("catalog_http_request_duration_seconds_count{method=\"GET\",route=\"/products/{name}\""),
            54.0
        );
        assert_eq!(scrape.sum("frontend_cache_misses_total"), 0.0);
    }
}
