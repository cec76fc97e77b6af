//! The HTTP API: `/health`, `/v1/api/auth/login`, `/v1/api/sql`.
//!
//! This module is the edge: it authenticates, reads bounded bodies, hands SQL to the engine
//! and renders results and errors exactly as the contract says. Error codes are mapped to
//! HTTP statuses here and nowhere else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kalamdb_core::{Error, ErrorCode, Principal};
use kalamdb_sql::{Caller, Engine, RequestOutcome, StatementOutput};
use serde_json::{json, Map, Value as Json_};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::{info_span, Level};

use crate::auth::Authenticator;
use crate::json::{column_values, type_name};
use crate::request::{read_json_object, sql_request, SqlRequest};

/// Shared state of all handlers.
pub struct AppState {
    pub engine: Engine,
    pub auth: Authenticator,
    pub max_body_bytes: usize,
    /// A request body must arrive within this (server.body_read_timeout_secs).
    pub body_read_timeout: std::time::Duration,
    pub started: Instant,
    /// Renders /metrics; None when metrics are disabled.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub metrics_allow_remote: bool,
    pub slow_query_ms: u64,
}

/// The router with every endpoint and the request span / panic layers.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/api/auth/login", post(login))
        .route("/v1/api/sql", post(sql))
        .route("/metrics", get(metrics_endpoint))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(record_request))
        .layer(CatchPanicLayer::custom(|_| {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, &Error::Internal("handler panicked".into()), None, Vec::new(), None)
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<Body>| {
                    info_span!("request", method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// HTTP status of an error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidSql
        | ErrorCode::InvalidParameter
        | ErrorCode::TypeMismatch
        | ErrorCode::Unsupported => StatusCode::BAD_REQUEST,
        ErrorCode::ConstraintViolation
        | ErrorCode::AlreadyExists
        | ErrorCode::SerializationFailure => StatusCode::CONFLICT,
        ErrorCode::NamespaceNotFound | ErrorCode::TableNotFound | ErrorCode::JobNotFound => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Timeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn took_ms(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

fn error_response(
    status: StatusCode,
    e: &Error,
    statement_index: Option<usize>,
    results: Vec<Json_>,
    start: Option<Instant>,
) -> Response {
    if let Error::Internal(detail) = e {
        tracing::error!(%detail, "internal error");
    }
    let mut err = Map::new();
    err.insert("code".into(), json!(e.code().as_str()));
    err.insert("message".into(), json!(e.client_message()));
    if let Some(i) = statement_index {
        err.insert("statement_index".into(), json!(i));
    }
    if let Error::InvalidSql { line, column, .. } = e {
        if let Some(l) = line {
            err.insert("line".into(), json!(l));
        }
        if let Some(c) = column {
            err.insert("column".into(), json!(c));
        }
    }
    let body = json!({
        "status": "error",
        "error": err,
        "results": results,
        "took_ms": start.map(took_ms).unwrap_or(0.0),
    });
    (status, Json(body)).into_response()
}

fn fail(e: Error, start: Instant) -> Response {
    error_response(status_of(e.code()), &e, None, Vec::new(), Some(start))
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"status":"error","error":{"code":"NOT_FOUND","message":"no such endpoint"}})),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"status":"error","error":{"code":"METHOD_NOT_ALLOWED","message":"this endpoint does not accept that method"}})),
    )
        .into_response()
}

/// Count every request by endpoint and status, and time it.
async fn record_request(req: Request<Body>, next: axum::middleware::Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("kalamdb_http_requests_total", "endpoint" => endpoint.clone(), "status" => status).increment(1);
    metrics::histogram!("kalamdb_http_request_duration_seconds", "endpoint" => endpoint)
        .record(start.elapsed().as_secs_f64());
    resp
}

async fn metrics_endpoint(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let Some(handle) = &state.metrics else {
        return not_found().await;
    };
    if !state.metrics_allow_remote && !peer.ip().is_loopback() {
        return (
            StatusCode::FORBIDDEN,
            "metrics are served to loopback clients only (metrics.allow_remote)\n",
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
    }))
    .into_response()
}

async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let start = Instant::now();
    let obj = match read_json_object(
        &headers,
        body,
        state.max_body_bytes,
        state.body_read_timeout,
    )
    .await
    {
        Ok(o) => o,
        Err(e) => return fail(e, start),
    };
    let (Some(Json_::String(user)), Some(Json_::String(password))) =
        (obj.get("username"), obj.get("password"))
    else {
        return fail(
            Error::InvalidParameter("username and password (strings) are required".into()),
            start,
        );
    };
    let auth_result = {
        let (user, password) = (user.clone(), password.clone());
        let st = state.clone();
        tokio::task::spawn_blocking(move || {
            let u = st.auth.check_password(&user, &password, peer)?;
            st.auth.issue_token(&u)
        })
        .await
    };
    match auth_result {
        Ok(Ok(t)) => Json(json!({
            "access_token": t.access_token,
            "token_type": "Bearer",
            "expires_at": t.expires_at,
        }))
        .into_response(),
        Ok(Err(e)) => fail(e, start),
        Err(e) => fail(Error::Internal(e.to_string()), start),
    }
}

async fn authenticate(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Principal, Error> {
    let header = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("").to_string());
    // Tokens and already-verified passwords are checked here; a password check that runs
    // argon2 goes to a blocking thread, off the async workers. (The hop cost every request
    // a thread hand-off; docs/BENCHMARKS.md, scenario 2.)
    if let Some(done) = state
        .auth
        .authenticate_without_hashing(header.as_deref(), peer)
    {
        return done;
    }
    let st = state.clone();
    tokio::task::spawn_blocking(move || st.auth.authenticate(header.as_deref(), peer))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

async fn sql(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let start = Instant::now();
    let principal = match authenticate(&state, &headers, peer).await {
        Ok(p) => p,
        Err(e) => return fail(e, start),
    };
    let obj = match read_json_object(
        &headers,
        body,
        state.max_body_bytes,
        state.body_read_timeout,
    )
    .await
    {
        Ok(o) => o,
        Err(e) => return fail(e, start),
    };
    let SqlRequest {
        sql,
        params,
        namespace,
        timeout,
    } = match sql_request(&obj) {
        Ok(r) => r,
        Err(e) => return fail(e, start),
    };
    let user_id = principal.user_id.clone();
    let caller = Caller::new(principal, namespace, timeout);
    let span = info_span!("sql", user = %user_id);
    let outcome = {
        use tracing::Instrument;
        state
            .engine
            .execute(&caller, &sql, &params)
            .instrument(span.clone())
            .await
    };
    respond(&state, outcome, &span, &sql, start)
}

/// The response to a request's outcome: its results as JSON (rendered under the request's
/// held account), or the failed statement's error with the results before it.
fn respond(
    state: &AppState,
    outcome: RequestOutcome,
    span: &tracing::Span,
    sql: &str,
    start: Instant,
) -> Response {
    // Rendered under the request's held account: the JSON of many large results counts with
    // the running queries, and a rendering that takes more than its share stops.
    let held = outcome.held.clone();
    let render = || -> Result<Vec<Json_>, (usize, Error)> {
        let check = || held.as_ref().map_or(Ok(()), |h| h.check());
        outcome
            .results
            .iter()
            .enumerate()
            .map(|(i, out)| render_output(out, &check).map_err(|e| (i, e)))
            .collect()
    };
    let rendered = match &held {
        Some(h) => h.charged(render),
        None => render(),
    };
    let (results, error) = match rendered {
        Ok(results) => (results, outcome.error),
        Err((index, e)) => (Vec::new(), Some((index, e))),
    };
    let elapsed_ms = start.elapsed().as_millis() as u64;
    if state.slow_query_ms > 0 && elapsed_ms >= state.slow_query_ms {
        tracing::warn!(
            parent: span,
            took_ms = elapsed_ms,
            sql = %kalamdb_core::truncate_for_message(sql),
            "slow query"
        );
    }
    let held_for_body = held.clone();
    let answer = move || match error {
        None => {
            let body = json!({
                "status": "success",
                "results": results,
                "took_ms": took_ms(start),
            });
            match checked_json(&body, held_for_body.as_deref()) {
                Ok(response) => response,
                Err(e) => error_response(status_of(e.code()), &e, Some(0), Vec::new(), Some(start)),
            }
        }
        Some((index, e)) => {
            if e.code() != ErrorCode::InternalError {
                tracing::debug!(parent: span, code = %e.code(), statement_index = index, "statement failed");
            }
            error_response(status_of(e.code()), &e, Some(index), results, Some(start))
        }
    };
    match &held {
        Some(h) => h.charged(answer),
        None => answer(),
    }
}

/// `value` as a JSON response body, written under the request's account and checked every
/// MiB: the text can be several times the values (`\u0001` is six bytes for one: 60 MB of
/// such values answered 360 MB with a 128 MiB limit).
fn checked_json(value: &Json_, held: Option<&kalamdb_core::Account>) -> Result<Response, Error> {
    struct Checked<'a> {
        out: Vec<u8>,
        held: Option<&'a kalamdb_core::Account>,
        next_check: usize,
        refused: Option<Error>,
    }
    impl std::io::Write for Checked<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.out.extend_from_slice(buf);
            if self.out.len() >= self.next_check {
                self.next_check = self.out.len() + (1 << 20);
                if let Some(Err(e)) = self.held.map(|h| h.check()) {
                    self.refused = Some(e);
                    return Err(std::io::Error::other("over the query memory limit"));
                }
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut body = Checked {
        out: Vec::new(),
        held,
        next_check: 1 << 20,
        refused: None,
    };
    if let Err(e) = serde_json::to_writer(&mut body, value) {
        return Err(body
            .refused
            .take()
            .unwrap_or_else(|| Error::Internal(format!("cannot render the response: {e}"))));
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], body.out).into_response())
}

/// Rows rendered between two checks of the request's memory.
const RENDER_CHECK_ROWS: usize = 1024;

fn render_output(
    out: &StatementOutput,
    check: &dyn Fn() -> Result<(), Error>,
) -> Result<Json_, Error> {
    Ok(match out {
        StatementOutput::Rows {
            schema,
            batches,
            row_count,
        } => {
            let schema_json: Vec<Json_> = schema
                .fields()
                .iter()
                .map(|f| json!({"name": f.name(), "data_type": type_name(f)}))
                .collect();
            let mut rows: Vec<Json_> = Vec::with_capacity(*row_count);
            for b in batches {
                let mut cols: Vec<std::vec::IntoIter<Json_>> = b
                    .columns()
                    .iter()
                    .map(|c| column_values(c).into_iter())
                    .collect();
                check()?;
                for _ in 0..b.num_rows() {
                    rows.push(Json_::Array(
                        cols.iter_mut()
                            .map(|c| c.next().unwrap_or(Json_::Null))
                            .collect(),
                    ));
                    if rows.len() % RENDER_CHECK_ROWS == 0 {
                        check()?;
                    }
                }
            }
            json!({"schema": schema_json, "rows": rows, "row_count": row_count, "message": null})
        }
        StatementOutput::Affected { row_count, message } => {
            json!({"row_count": row_count, "message": message})
        }
        StatementOutput::Message(m) => json!({"row_count": 0, "message": m}),
        StatementOutput::Job {
            message,
            job_ids,
            job,
        } => {
            let mut out = match job {
                Some((schema, batches)) => render_output(
                    &StatementOutput::Rows {
                        schema: schema.clone(),
                        batches: batches.clone(),
                        row_count: batches.iter().map(|b| b.num_rows()).sum(),
                    },
                    check,
                )?,
                None => json!({"row_count": 0}),
            };
            out["message"] = json!(message);
            match job_ids.as_slice() {
                [one] => out["job_id"] = json!(one),
                _ => out["job_ids"] = json!(job_ids),
            }
            out
        }
    })
}
