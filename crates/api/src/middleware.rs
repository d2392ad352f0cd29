//! Cross-cutting HTTP behaviour: request metrics, and the guarantee that every error response
//! is a problem document even when it was produced by a layer (timeouts, panics, unmatched
//! routes) rather than a handler.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::{PROBLEM_JSON, Problem};

/// The process-wide Prometheus recorder. Installed once; every app instance in the process
/// (tests run several) renders the same registry.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .expect("valid buckets");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); ours still renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Counts requests and times them, labelled by the matched route template (never by the raw
/// path, which would explode label cardinality).
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let elapsed = start.elapsed().as_secs_f64();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(elapsed);
    res
}

/// Rewrites any error response that is not already a problem document (axum's own
/// rejections, the timeout layer, the body limit) into one, keeping headers such as `Allow`.
pub async fn problem_fallback(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if is_problem {
        return res;
    }
    let (parts, body) = res.into_parts();
    let is_text = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let mut problem = Problem::from_status(status);
    if is_text
        && !status.is_server_error()
        && let Ok(bytes) = axum::body::to_bytes(body, 2048).await
        && !bytes.is_empty()
    {
        problem = problem.detail(boxoffice_domain::ids::truncate(
            &String::from_utf8_lossy(&bytes),
            300,
        ));
    }
    let mut out = problem.into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    if let Some(id) = parts.headers.get("x-request-id") {
        out.headers_mut().insert("x-request-id", id.clone());
    }
    out
}

/// 401s say which scheme to use.
pub async fn www_authenticate(res: Response) -> Response {
    let mut res = res;
    if res.status() == axum::http::StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .entry(header::WWW_AUTHENTICATE)
            .or_insert(HeaderValue::from_static("Bearer"));
    }
    res
}

/// How long shared caches (a CDN, HAProxy's cache, browsers) may keep the read-heavy public
/// answers, by matched route: the catalog changes rarely, availability often. `None`: not
/// cacheable.
fn cache_policy(route: &str) -> Option<&'static str> {
    match route {
        "/v1/events" | "/v1/events/{eventId}" => {
            Some("public, max-age=5, stale-while-revalidate=30")
        }
        "/v1/events/{eventId}/seats" | "/v1/events/{eventId}/listings" => {
            Some("public, max-age=1, stale-while-revalidate=5")
        }
        _ => None,
    }
}

/// The largest answer given an ETag (a stadium's seat map is a few MiB); larger ones pass
/// through uncached.
const CACHEABLE_BYTES: usize = 32 * 1024 * 1024;

/// HTTP caching for the public read routes: a strong `ETag` (a 128-bit hash of the body),
/// `Cache-Control` with a short `max-age` and `stale-while-revalidate`, `Vary`, and `304 Not
/// Modified` for a matching `If-None-Match` — so a cache in front can serve event pages and
/// seat maps during an on-sale and revalidate cheaply.
pub async fn http_cache(req: Request, next: Next) -> Response {
    let policy = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| cache_policy(p.as_str()))
        .filter(|_| req.method() == axum::http::Method::GET);
    let Some(policy) = policy else {
        return next.run(req).await;
    };
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let res = next.run(req).await;
    if res.status() != axum::http::StatusCode::OK {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, CACHEABLE_BYTES).await else {
        return Problem::from_status(axum::http::StatusCode::INTERNAL_SERVER_ERROR).into_response();
    };
    // A fast non-cryptographic 128-bit hash: the tag only has to change when the body does
    // (a collision between two bodies of the same URL is what would matter); SHA-256 took
    // ~7-13 % of a cached search's CPU (bench/RESULTS.md, issue 10).
    let etag = format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(&bytes));
    let headers = &mut parts.headers;
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let matches = if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag)
        });
    if matches {
        parts.status = axum::http::StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
