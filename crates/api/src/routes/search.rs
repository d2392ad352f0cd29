//! `GET /v1/events`: event search, answered by this node's search index alone (never by the
//! database), for anyone.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_search::query::SearchRequest;
use boxoffice_search::{ParamError, SearchError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search_events))
}

/// Search parameters. Every filter combines with every other and with `q`, or with none
/// (browsing). Unknown or repeated parameters are rejected.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // documentation of the parameters; parsing is `SearchRequest::parse`
pub struct SearchParams {
    /// Words to find in names, performers, venues, cities and descriptions; typos, prefixes
    /// and accents are tolerated (`tayler swfit`, `beyon`, `bjork`).
    q: Option<String>,
    /// Exact venue ZIP or postal code.
    zip_code: Option<String>,
    /// Latitude of the searcher, with `lon`: adds `distanceKm` to hits.
    lat: Option<f64>,
    lon: Option<f64>,
    /// Only events within this distance of `lat`/`lon`.
    radius_km: Option<f64>,
    /// One or several categories, comma-separated: concert, sports, theater, comedy,
    /// festival, family, conference, arts, other.
    category: Option<String>,
    /// Events whose price range (cheapest to dearest section, minor units) overlaps
    /// `priceMin`..`priceMax`.
    price_min: Option<i64>,
    price_max: Option<i64>,
    /// RFC 3339. Without `startsAfter`, only events that have not started yet.
    starts_after: Option<String>,
    starts_before: Option<String>,
    /// Only events with seats left.
    available_only: Option<bool>,
    /// relevance (default with `q`), date (default without), price (cheapest section) or
    /// distance (needs `lat`/`lon`).
    sort: Option<String>,
    /// Hits per page, 1 to 100 (default 20).
    limit: Option<u32>,
    /// `nextCursor` of the previous page, with otherwise the same parameters.
    cursor: Option<String>,
}

/// One page of hits, the cursor of the next page, and facet counts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchResponse {
    pub events: Vec<SearchHit>,
    /// `null` on the last page.
    pub next_cursor: Option<String>,
    /// Events matching the search (all pages).
    pub total: u64,
    pub facets: Facets,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    #[schema(format = Uuid)]
    pub event_id: String,
    pub name: String,
    pub performers: Vec<String>,
    pub category: String,
    /// RFC 3339.
    pub starts_at: String,
    pub venue: HitVenue,
    pub min_price_cents: i64,
    pub max_price_cents: i64,
    pub currency: String,
    pub capacity: u32,
    /// Places still available (within a second of every booking).
    pub seats_left: u32,
    /// Present when `lat`/`lon` were given.
    pub distance_km: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HitVenue {
    pub name: String,
    pub city: String,
    pub zip_code: String,
    pub country: String,
    pub lat: f64,
    pub lon: f64,
}

/// Counts for refining a search. Each facet counts the events matching every *other*
/// filter, so that a page can offer the alternatives.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Facets {
    /// Events per category.
    #[schema(value_type = Object)]
    pub category: serde_json::Map<String, serde_json::Value>,
    /// Events per band of their cheapest section's price.
    pub price_band: Vec<PriceBand>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceBand {
    pub min_cents: i64,
    /// `null` for the open-ended top band.
    pub max_cents: Option<i64>,
    pub count: u64,
}

/// Search events.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(SearchParams),
    responses(
        (status = 200, description = "A page of matching events", body = SearchResponse),
        (status = 400, description = "A malformed parameter, named in `parameter`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Search is overloaded; retry shortly", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn search_events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|_| {
        invalid(ParamError {
            parameter: "query".into(),
            message: "the query string is not valid form encoding".into(),
        })
    })?;
    let request = SearchRequest::parse(&pairs).map_err(invalid)?;
    let body = state.search.search(request).await.map_err(|e| match e {
        SearchError::Overloaded => ApiError::Unavailable("search queue is full".into()),
        other => ApiError::Internal(format!("search: {other}")),
    })?;
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

fn invalid(e: ParamError) -> ApiError {
    ApiError::problem(
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "A search parameter is invalid",
        )
        .detail(e.to_string())
        .with("parameter", e.parameter),
    )
}
