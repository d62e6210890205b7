//! The outside world as the engine sees it: async traits the engine is generic over, and the
//! plain data that crosses them. Adapters implement these; tests can too.
//!
//! Owns: [`MetricsSource`] and its sample types and errors. Must not touch: any concrete
//! client library (those live in `adapters`).

use std::collections::BTreeMap;
use std::future::Future;

/// Label set of one series.
pub type Labels = BTreeMap<String, String>;

/// Unix time in whole seconds, the resolution Prometheus queries take.
pub type UnixSeconds = i64;

/// One series of an instant query.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub value: f64,
}

/// One series of a range query: `(time, value)` points in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(UnixSeconds, f64)>,
}

/// Why a query gave no answer. None of these is ever read as a number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("query timed out after {seconds}s")]
    Timeout { seconds: u64 },
    #[error("cannot reach the metrics source: {0}")]
    Unreachable(String),
    #[error("the metrics source refused the query: {0}")]
    Rejected(String),
    #[error("the metrics source answered something unreadable: {0}")]
    BadResponse(String),
}

/// Where SLI numbers come from: Prometheus or anything that speaks its query API.
pub trait MetricsSource: Send + Sync {
    /// Evaluates `expr` at `at`.
    fn instant(
        &self,
        expr: &str,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<Vec<InstantSample>, MetricsError>> + Send;

    /// Evaluates `expr` at every `step` seconds from `start` to `end` inclusive.
    fn range(
        &self,
        expr: &str,
        start: UnixSeconds,
        end: UnixSeconds,
        step: u64,
    ) -> impl Future<Output = Result<Vec<RangeSeries>, MetricsError>> + Send;
}
