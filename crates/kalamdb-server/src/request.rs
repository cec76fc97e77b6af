//! Reading a request: its body, bounded in size and time, as a JSON object, and the fields of
//! a `POST /v1/api/sql` body, each checked.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use kalamdb_core::{Error, DEFAULT_NAMESPACE};
use serde_json::{Map, Value as Json_};

/// Most bytes of an over-limit body read (and discarded) so the client can read our 413
/// instead of a broken connection.
const MAX_DRAIN_BYTES: usize = 256 * 1024 * 1024;

/// Read a request body, refusing more than `limit` bytes (413 with the contract's code).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Error> {
    use futures::StreamExt;
    let too_large = || Error::PayloadTooLarge(format!("request body exceeds {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_DRAIN_BYTES as u64) {
        // Too large even to drain (so the client could read the 413): refused before a byte
        // of it is read, and the connection is not reused.
        return Err(too_large());
    }
    let mut over = declared.is_some_and(|n| n > limit as u64);
    let mut buf = Vec::with_capacity(declared.map(|n| n.min(limit as u64) as usize).unwrap_or(0));
    let mut seen = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(Error::InvalidParameter(
                "the request body could not be read".into(),
            ));
        };
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            over = true;
        }
        if over {
            buf = Vec::new();
            if seen > MAX_DRAIN_BYTES {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&chunk);
    }
    if over {
        Err(too_large())
    } else {
        Ok(Bytes::from(buf))
    }
}

/// Read a body of at most `limit` bytes within `timeout` and parse it as a JSON object.
pub(crate) async fn read_json_object(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Map<String, Json_>, Error> {
    let bytes = match tokio::time::timeout(timeout, read_body(headers, body, limit)).await {
        Ok(read) => read?,
        Err(_) => {
            return Err(Error::Timeout(format!(
                "the request body did not arrive within {} s (server.body_read_timeout_secs)",
                timeout.as_secs()
            )))
        }
    };
    match serde_json::from_slice::<Json_>(&bytes) {
        Ok(Json_::Object(m)) => Ok(m),
        Ok(_) => Err(Error::InvalidParameter(
            "the request body must be a JSON object".into(),
        )),
        Err(e) => Err(Error::InvalidParameter(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

/// A positive whole number of milliseconds (at most 2^53, where doubles stop being exact).
fn whole_millis(n: &serde_json::Number) -> Option<u64> {
    match n.as_u64() {
        Some(ms) => (ms > 0).then_some(ms),
        None => n
            .as_f64()
            .filter(|f| *f >= 1.0 && f.fract() == 0.0 && *f <= 9_007_199_254_740_992.0)
            .map(|f| f as u64),
    }
}

/// The fields of a `POST /v1/api/sql` body.
pub(crate) struct SqlRequest {
    pub sql: String,
    pub params: Vec<Json_>,
    pub namespace: String,
    /// The request's own statement timeout (`timeout_ms`).
    pub timeout: Option<Duration>,
}

/// Read a request body's fields, each checked: INVALID_SQL without SQL, INVALID_PARAMETER
/// for a field of the wrong kind.
pub(crate) fn sql_request(obj: &Map<String, Json_>) -> Result<SqlRequest, Error> {
    let sql = match obj.get("sql") {
        Some(Json_::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Json_::String(_)) => return Err(Error::invalid_sql("'sql' is empty")),
        Some(_) => return Err(Error::InvalidParameter("'sql' must be a string".into())),
        None => return Err(Error::invalid_sql("'sql' is missing")),
    };
    let params = match obj.get("params") {
        None | Some(Json_::Null) => Vec::new(),
        Some(Json_::Array(a)) => a.clone(),
        Some(_) => return Err(Error::InvalidParameter("'params' must be an array".into())),
    };
    let namespace = match obj.get("namespace") {
        None | Some(Json_::Null) => DEFAULT_NAMESPACE.to_string(),
        Some(Json_::String(s)) => s.clone(),
        Some(_) => {
            return Err(Error::InvalidParameter(
                "'namespace' must be a string".into(),
            ))
        }
    };
    // The request's own statement timeout; the engine holds it to
    // limits.max_statement_timeout_secs.
    // A whole number, however JSON spells it (1000, 1000.0, 1e3).
    let timeout = match obj
        .get("timeout_ms")
        .map(|v| (v, v.as_number().and_then(whole_millis)))
    {
        None | Some((Json_::Null, _)) => None,
        Some((_, Some(ms))) => Some(Duration::from_millis(ms)),
        Some((_, None)) => {
            return Err(Error::InvalidParameter(
                "'timeout_ms' must be a positive whole number of milliseconds".into(),
            ))
        }
    };
    Ok(SqlRequest {
        sql,
        params,
        namespace,
        timeout,
    })
}
