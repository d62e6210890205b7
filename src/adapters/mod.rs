//! One module per outside system. Nothing outside `adapters` names these systems' client
//! crates; the engine sees them only through the traits in `ports`.

pub mod actuator;
mod compact_vector;
pub mod http_action;
pub mod kube;
pub mod notify;
pub mod prometheus;
pub mod store;
