//! burnguard: SLO monitoring and auto-remediation next to Prometheus.
//!
//! The data flows one way: policy files -> validated [`domain::policy::Slo`] -> PromQL ->
//! numbers -> verdicts -> actions -> records.
//!
//! - [`domain`] is pure: policy types, validation, burn-rate math, rule generation. It
//!   depends on nothing else in this crate and does no I/O; time and data are parameters.
//! - [`policies`] reads policy files from disk and hands them to the domain.
//! - [`ports`] are the async traits the engine needs; [`adapters`] implement them (Prometheus).
//! - [`engine`] runs evaluation cycles and backtests over a port, calling the domain.
//! - [`service`] is the long-running `serve` process; [`http`] its routes; [`config`] and
//!   [`telemetry`] its settings and logs; [`allocator`] hands the heap a cycle freed back to
//!   the operating system.
//! - [`cli`] wires commands to the rest; it is the only place that prints.
//!
//! An arrow that points the other way (the domain calling out to I/O) is a bug.

pub mod adapters;
pub mod allocator;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod http;
pub mod policies;
pub mod ports;
pub mod redact;
pub mod service;
pub mod telemetry;
pub mod timefmt;
