//! Webhooks from the payment provider. A verified delivery about a payment wakes the
//! reconciler, which asks the provider for the facts by key and settles whatever it concerns;
//! the delivery itself is trusted only to say "look now", never for the outcome.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stripe_webhook))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
}

/// Stripe webhook deliveries, verified with the `Stripe-Signature` HMAC and a timestamp
/// tolerance. Enabled when a webhook secret is configured.
#[utoipa::path(
    post,
    path = "/v1/webhooks/stripe",
    tag = "booking",
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex>")),
    request_body(content = Object, description = "A Stripe event", content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted", body = WebhookAck),
        (status = 400, description = "Signature missing, wrong or too old", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Webhooks are not configured", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookAck>> {
    let Some(secret) = &state.config.stripe_webhook_secret else {
        return Err(ApiError::not_found("webhook endpoint"));
    };
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let event = boxoffice_payments::verify_webhook(
        &body,
        signature,
        secret.expose(),
        boxoffice_payments::webhook::DEFAULT_TOLERANCE,
        state.clock.now(),
    )
    .map_err(|e| {
        ApiError::from(
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-signature",
                "The webhook signature does not verify",
            )
            .detail(e.to_string()),
        )
    })?;
    tracing::info!(event_id = %event.id, event_type = %event.event_type, "stripe webhook");
    if event.event_type.starts_with("payment_intent.") || event.event_type.starts_with("charge.") {
        let booking = state.booking.clone();
        tokio::spawn(async move {
            if let Err(e) = booking.reconcile().await {
                tracing::warn!(error = %e, "reconciliation after a webhook failed");
            }
        });
    }
    Ok(Json(WebhookAck { received: true }))
}
