//! The core of burnguard: policy types, validation, burn-rate math and rule generation.
//!
//! Pure code only. No tokio, sqlx, kube, reqwest or axum here, and no clock reads: callers
//! pass `now`, numbers and text in and get values back. That keeps every formula testable
//! with a table and a property test.

pub mod admission;
pub mod burn;
pub mod calendar;
pub mod cluster;
pub mod dashboards;
pub mod delivery;
pub mod incident;
pub mod journal;
pub mod playbook;
pub mod policy;
pub mod problem;
pub mod reconcile;
pub mod rollback;
pub mod rules;
pub mod selector;
pub mod sli;
pub mod spec;
pub mod validate;
pub mod windows;
