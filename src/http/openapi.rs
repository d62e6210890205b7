//! The API's routes and their OpenAPI 3 document, from one table: the router is built from
//! [`OPERATIONS`] and so is `/api/v1/openapi.json`, so the two cannot drift apart. Each
//! operation declares its path and query parameters with their types and its body's schema
//! (the fields the handler's body type accepts, nothing more: unknown fields are refused), so
//! a client generated from the document, or a schema-driven fuzzer, sends what the server
//! accepts.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, delete, get, post};
use serde_json::{Value, json};

use super::{api, freeze};
use crate::http::state::ServiceState;

type Handler = fn() -> MethodRouter<Arc<ServiceState>>;

/// A query parameter: its name and a function giving its JSON Schema.
type QueryParam = (&'static str, fn() -> Value);

/// One API operation: its route, how it is documented, and its handler.
pub struct Operation {
    pub method: &'static str,
    /// Path under `/api/v1`, in the `{param}` syntax axum and OpenAPI share.
    pub path: &'static str,
    pub summary: &'static str,
    /// Needs a bearer token (mutating calls always; reads when `protectReads` is set).
    pub mutating: bool,
    /// `Some(description)` when the operation takes a JSON body.
    pub body: Option<&'static str>,
    /// The body's JSON Schema (with `body`).
    pub body_schema: Option<fn() -> Value>,
    /// Query parameters: name and JSON Schema.
    pub query: &'static [QueryParam],
    pub responses: &'static [(u16, &'static str)],
    handler: Handler,
}

const ERRORS: &[(u16, &str)] = &[
    (
        400,
        "bad input, control characters in a name or text included (JSON error)",
    ),
    (401, "missing or wrong token"),
    (404, "not found"),
    (408, "the request took longer than 30s"),
    (413, "body over 1 MiB"),
    (415, "a body that is not application/json"),
];

/// A name as Kubernetes and burnguard spell them (an SLO, a service, a namespace, a
/// Deployment).
fn name_param() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 253,
           "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"})
}

/// A time: RFC 3339 or unix seconds.
fn time_param() -> Value {
    json!({"type": "string", "minLength": 1,
           "description": "RFC 3339 (2026-01-04T00:00:00Z) or unix seconds",
           "example": "2026-01-04T00:00:00Z"})
}

fn status_param() -> Value {
    json!({"type": "string", "enum": ["open", "acknowledged", "resolved", "all"]})
}

/// A Deployment's labels as `k=v,k2=v2`.
fn labels_param() -> Value {
    json!({"type": "string", "description": "the Deployment's labels, k=v pairs joined by commas",
           "example": "app=web,tier=front"})
}

/// Free text a person writes: no control characters but tab and line breaks.
fn text(max: u64) -> Value {
    json!({"type": "string", "maxLength": max, "pattern": "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F]*$"})
}

/// Body of ack, resolve and approve (all optional; an empty body is fine).
fn command_body() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "note": text(4096),
        "by": text(253),
    }})
}

/// Body of a note: the text is required.
fn note_body() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["note"], "properties": {
        "note": {"allOf": [text(4096), {"minLength": 1, "pattern": "\\S"}]},
        "by": text(253),
    }})
}

/// Body of a freeze made by hand.
fn freeze_body() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["reason"], "properties": {
        "reason": {"allOf": [text(4096), {"minLength": 1, "pattern": "\\S"}]},
        "service": name_param(),
        "namespace": name_param(),
        "deployments": {"type": "array", "items": name_param(), "maxItems": 100},
        "selector": {"type": "string", "description": "a Kubernetes label selector", "example": "app=web"},
        "by": text(253),
    }})
}

pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/slos",
        summary: "Every SLO with its latest evaluation",
        mutating: false,
        body: None,
        body_schema: None,
        query: &[],
        responses: &[(200, "{\"slos\": [evaluation]}")],
        handler: || get(api::list_slos),
    },
    Operation {
        method: "get",
        path: "/slos/{name}",
        summary: "One SLO's latest evaluation: status, ratios, burn rates, budget, alerts; a grouped SLO's as {name, groups: [one per group]}",
        mutating: false,
        body: None,
        body_schema: None,
        query: &[],
        responses: &[(200, "evaluation"), (404, "never evaluated")],
        handler: || get(api::get_slo),
    },
    Operation {
        method: "get",
        path: "/slos/{name}/history",
        summary: "An SLO's stored evaluations between from and to (RFC 3339 or unix seconds; default the last 24h)",
        mutating: false,
        body: None,
        body_schema: None,
        query: &[("from", time_param), ("to", time_param)],
        responses: &[(200, "{\"evaluations\": [...]}"), (400, "bad time")],
        handler: || get(api::slo_history),
    },
    Operation {
        method: "get",
        path: "/incidents",
        summary: "Incidents, newest first; ?status=open|acknowledged|resolved|all&slo=NAME",
        mutating: false,
        body: None,
        body_schema: None,
        query: &[("status", status_param), ("slo", name_param)],
        responses: &[(200, "{\"incidents\": [...]}"), (400, "bad status")],
        handler: || get(api::list_incidents),
    },
    Operation {
        method: "get",
        path: "/incidents/{id}",
        summary: "One incident with its timeline and actions",
        mutating: false,
        body: None,
        body_schema: None,
        query: &[],
        responses: &[(200, "incident"), (404, "no such incident")],
        handler: || get(api::get_incident),
    },
    Operation {
        method: "post",
        path: "/incidents/{id}/ack",
        summary: "Acknowledge an open incident",
        mutating: true,
        body: Some(
            "{\"note\": \"...\", \"by\": \"...\"} (optional); the actor is the token's name, `by` only adds \"on behalf of <by>\" to the note",
        ),
        body_schema: Some(command_body),
        query: &[],
        responses: &[(200, "incident"), (409, "not open")],
        handler: || post(api::acknowledge),
    },
    Operation {
        method: "post",
        path: "/incidents/{id}/resolve",
        summary: "Resolve an incident by hand",
        mutating: true,
        body: Some(
            "{\"note\": \"...\", \"by\": \"...\"} (optional); the actor is the token's name, `by` only adds \"on behalf of <by>\" to the note",
        ),
        body_schema: Some(command_body),
        query: &[],
        responses: &[(200, "incident"), (409, "already resolved")],
        handler: || post(api::resolve),
    },
    Operation {
        method: "post",
        path: "/incidents/{id}/approve",
        summary: "Approve playbook steps waiting for approval; they run on the next cycle",
        mutating: true,
        body: Some(
            "{\"note\": \"...\", \"by\": \"...\"} (optional); the actor is the token's name, `by` only adds \"on behalf of <by>\" to the note",
        ),
        body_schema: Some(command_body),
        query: &[],
        responses: &[(200, "incident"), (409, "nothing waits")],
        handler: || post(api::approve),
    },
    Operation {
        method: "post",
        path: "/incidents/{id}/notes",
        summary: "Add a note to an incident's timeline (any status)",
        mutating: true,
        body: Some(
            "{\"note\": \"...\", \"by\": \"...\"}; the note is required; the actor is the token's name, `by` only adds \"on behalf of <by>\"",
        ),
        body_schema: Some(note_body),
        query: &[],
        responses: &[(200, "incident"), (404, "no such incident")],
        handler: || post(api::note),
    },
    Operation {
        method: "get",
        path: "/freezes",
        summary: "Active deployment freezes",
        mutating: false,
        body: None,
        body_schema: None,
        query: &[],
        responses: &[(200, "{\"freezes\": [...]}")],
        handler: || get(api::list_freezes),
    },
    Operation {
        method: "post",
        path: "/freezes",
        summary: "Freeze deployments by hand",
        mutating: true,
        body: Some(
            "{\"reason\": \"...\", \"service\"?: \"...\", \"namespace\"?: \"...\", \"deployments\"?: [...], \"selector\"?: \"...\", \"by\"?: \"...\"}; created_by is the token's name, `by` only adds \"(on behalf of <by>)\" to the reason; control characters are refused",
        ),
        body_schema: Some(freeze_body),
        query: &[],
        responses: &[(201, "freeze")],
        handler: || post(api::create_freeze),
    },
    Operation {
        method: "delete",
        path: "/freezes/{id}",
        summary: "Lift a freeze by hand (removes burnguard's Kubernetes marks)",
        mutating: true,
        body: None,
        body_schema: None,
        query: &[],
        responses: &[(200, "{\"lifted\": id}"), (404, "no active freeze")],
        handler: || delete(api::lift_freeze),
    },
];

/// Open to pipelines, like `/metrics`: documented, never token-protected.
pub const GATE: Operation = Operation {
    method: "get",
    path: "/freeze-gate",
    summary: "CI/CD freeze gate: ?namespace=N&deployment=D[&labels=k=v,k2=v2] or ?service=S; labels are the Deployment's labels, so freezes by selector apply too; 200 {\"frozen\": false} or 423 with reason, incident, since",
    mutating: false,
    body: None,
    body_schema: None,
    query: &[
        ("namespace", name_param),
        ("deployment", name_param),
        ("labels", labels_param),
        ("service", name_param),
    ],
    responses: &[
        (200, "not frozen"),
        (423, "frozen"),
        (
            400,
            "no target given, or labels that are not key=value pairs",
        ),
    ],
    handler: || get(freeze::gate),
};

/// The `/api/v1` router: token-checked operations, then the open gate and this document.
pub fn router(state: Arc<ServiceState>) -> Router<Arc<ServiceState>> {
    let mut by_path: BTreeMap<&str, MethodRouter<Arc<ServiceState>>> = BTreeMap::new();
    for op in OPERATIONS {
        let route = (op.handler)();
        let merged = match by_path.remove(op.path) {
            Some(existing) => existing.merge(route),
            None => route,
        };
        by_path.insert(op.path, merged);
    }
    let mut protected = Router::new();
    for (path, route) in by_path {
        protected = protected.route(path, route);
    }
    protected
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            api::require_token,
        ))
        .route(GATE.path, (GATE.handler)())
        .route("/openapi.json", get(|| async { axum::Json(document()) }))
}

/// The OpenAPI 3 document for [`OPERATIONS`] and the gate.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for op in OPERATIONS.iter().chain(std::iter::once(&GATE)) {
        let mut responses = serde_json::Map::new();
        for (code, description) in op.responses.iter().chain(ERRORS) {
            responses.entry(code.to_string()).or_insert(json!({
                "description": description,
                "content": {"application/json": {"schema": {"type": "object"}}}
            }));
        }
        let mut params: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let schema = if name == "id" {
                    json!({"type": "integer", "format": "int64", "minimum": 1})
                } else {
                    name_param()
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        params.extend(
            op.query
                .iter()
                .map(|(name, schema)| json!({"name": name, "in": "query", "required": false, "schema": schema()})),
        );
        let mut operation = json!({
            "summary": op.summary,
            "operationId": format!("{}{}", op.method, op.path.replace(['/', '{', '}'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if op.mutating {
            operation["security"] = json!([{"bearer": []}]);
        }
        if let Some(body) = op.body {
            let schema = op
                .body_schema
                .map_or_else(|| json!({"type": "object"}), |f| f());
            operation["requestBody"] = json!({
                "description": body,
                "required": false,
                "content": {"application/json": {"schema": schema}}
            });
        }
        let entry = paths
            .entry(format!("/api/v1{}", op.path))
            .or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "burnguard", "version": env!("CARGO_PKG_VERSION"), "description": "SLO monitoring and auto-remediation"},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    })
}
