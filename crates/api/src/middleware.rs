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
