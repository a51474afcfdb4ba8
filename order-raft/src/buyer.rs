//! `CatalogBuyer`: the leader's buys, batched into one `POST /buys` per round trip.
//!
//! Every order first buys its toy at the catalog with the order's request id. Sent one by one,
//! concurrent orders would cost the catalog one HTTP request each; queued in a [`BatchQueue`],
//! all the buys waiting while one call is in flight go in the next call.

use api::ApiError;
use api::catalog::{BuyAnswers, BuyBatch, BuyOutcome, BuyRequest, CatalogClient};
use api::client::CallError;
use axum::http::StatusCode;
use prometheus_client::metrics::histogram::Histogram;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use api::batch::BatchQueue;

#[derive(Clone)]
pub struct CatalogBuyer {
    catalog: CatalogClient,
    /// `None` when batching is off: every buy is its own concurrent call.
    queue: Option<BatchQueue<BuyRequest, Result<BuyOutcome, CallError>>>,
}

impl CatalogBuyer {
    pub fn start(
        catalog: CatalogClient,
        max_batch: usize,
        batch_sizes: Histogram,
        shutdown: CancellationToken,
    ) -> (Self, Option<JoinHandle<()>>) {
        if max_batch <= 1 {
            let buyer = Self {
                catalog,
                queue: None,
            };
            return (buyer, None);
        }
        let max_batch = max_batch.min(api::catalog::MAX_BUY_BATCH);
        let batch_catalog = catalog.clone();
        let (queue, task) = BatchQueue::start(
            max_batch,
            batch_sizes,
            shutdown,
            move |buys: Vec<BuyRequest>| {
                let catalog = batch_catalog.clone();
                async move { buy_all(&catalog, buys).await }
            },
        );
        let buyer = Self {
            catalog,
            queue: Some(queue),
        };
        (buyer, Some(task))
    }

    /// Buys at the catalog; the same request id never buys twice there.
    pub async fn buy(&self, request: BuyRequest) -> Result<BuyOutcome, CallError> {
        match &self.queue {
            Some(queue) => queue
                .submit(request)
                .await
                .map_err(|stopped| CallError::Unreachable(stopped.to_string()))?,
            None => buy_all(&self.catalog, vec![request])
                .await
                .pop()
                .unwrap_or_else(|| Err(CallError::Protocol("no answer to a buy".into()))),
        }
    }
}

async fn buy_all(
    catalog: &CatalogClient,
    buys: Vec<BuyRequest>,
) -> Vec<Result<BuyOutcome, CallError>> {
    let count = buys.len();
    let answers: Result<BuyAnswers, CallError> = catalog.buys(&BuyBatch { buys }).await;
    match answers {
        Ok(answers) if answers.len() == count => answers
            .into_iter()
            .map(|answer| {
                answer.map_err(|refusal| {
                    let status =
                        StatusCode::from_u16(refusal.code).unwrap_or(StatusCode::BAD_GATEWAY);
                    CallError::Api(ApiError::new(status, refusal.message))
                })
            })
            .collect(),
        Ok(answers) => {
            let err = CallError::Protocol(format!("{count} buys got {} answers", answers.len()));
            vec![Err(err); count]
        }
        Err(err) => vec![Err(err); count],
    }
}
