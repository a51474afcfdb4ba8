//! The crate's one error type: what stops a run from producing a report at all.
//!
//! Failed requests during the run are not errors here: they are counted in the report, which
//! is how a load client should treat them. [`ClientError`] is for what makes the run itself
//! impossible: no catalog to pick toys from, an output file that cannot be written.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot list the toys at {url}: {reason}")]
    ProductList { url: String, reason: String },

    #[error("the catalog at {url} has no toys to query")]
    EmptyCatalog { url: String },

    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot encode the JSON report: {0}")]
    Json(#[from] serde_json::Error),

    /// A session or verification task panicked or was cancelled (a bug in this crate).
    #[error("{task} stopped abnormally: {reason}")]
    TaskFailed { task: String, reason: String },
}

impl ClientError {
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Write {
            path: path.into(),
            source,
        }
    }
}
