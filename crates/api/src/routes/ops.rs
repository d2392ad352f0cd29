//! Operations: liveness, readiness, Prometheus metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, Problem};
use crate::extract::Json;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: String,
    /// Readiness only: this node's search index is `current`, or `lagging` when it has not
    /// kept up with the store for more than 5 seconds (its indexer is stalled or failing).
    /// Searches then show older availability; booking never depends on the index, so a
    /// lagging node stays ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Readiness only: how far behind the store the search index may be, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_lag_seconds: Option<f64>,
}

/// A search index behind the store for longer than this is reported as lagging.
pub const SEARCH_LAGGING_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        search: None,
        search_lag_seconds: None,
    })
}

/// Readiness: the database answers and this node's search index has been built (a node
/// rebuilding its index after a start from empty is alive but not ready). A built index that
/// falls behind the store is reported (`search: lagging`, `searchLagSeconds`) but does not make
/// the node unready: booking never depends on the index.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A dependency is down", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.store.ping().await?;
    let Some(lag) = state.search.lag() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "search-not-ready",
            "The search index of this node is still being built",
        )
        .into());
    };
    let lagging = lag > SEARCH_LAGGING_AFTER;
    Ok(Json(Health {
        status: "ready".into(),
        search: Some(if lagging { "lagging" } else { "current" }.into()),
        search_lag_seconds: Some((lag.as_secs_f64() * 10.0).round() / 10.0),
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(lag) = state.search.lag() {
        metrics::gauge!("search_index_lag_seconds").set(lag.as_secs_f64());
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
