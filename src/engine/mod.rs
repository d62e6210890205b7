//! Evaluation of SLOs against a [`crate::ports::MetricsSource`]: one cycle (`evaluate`),
//! replay over history (`backtest`), and the schedule that drives cycles (`schedule`).
//!
//! Owns: which queries to send, how many at once, and assembling their answers into
//! verdicts via the domain. Must not touch: concrete clients, printing, HTTP serving.

pub mod backtest;
pub mod evaluate;
pub mod notify;
pub mod reading;
pub mod record;
pub mod remediate;
pub mod schedule;

pub use evaluate::{Evaluation, Evaluator, ReadMode, SliSource, SloEvaluation};
