//! Webhooks from the payment provider. A verified delivery about one of our payments settles
//! that payment alone (single-flight with the periodic reconciler), asking the provider for
//! the facts by its reference: a delivery is trusted to say "look now", not for the outcome.
//! The exception is a dispute, which only the (signature-verified) event reports: the
//! booking behind it is revoked.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use boxoffice_domain::rules::Revocation;
use boxoffice_payments::webhook::PaymentEvent;

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
    // Only the payment the event names is looked at, in the background (Stripe wants a quick
    // answer); the reconciler's single-flight keeps a webhook and the periodic pass apart.
    if let Some(payment_event) = event.payment_event() {
        let revocation = match &payment_event {
            PaymentEvent::Refunded { .. } => Some(Revocation::RefundedAtProvider),
            PaymentEvent::Disputed { .. } => Some(Revocation::Disputed),
            _ => None,
        };
        let provider_ref = payment_event.provider_ref().to_owned();
        let provider_key = event.idempotency_key().map(str::to_owned);
        let booking = state.booking.clone();
        tokio::spawn(async move {
            if let Err(e) = booking
                .on_provider_event(&provider_ref, provider_key.as_deref(), revocation)
                .await
            {
                tracing::warn!(error = %e, "handling a payment webhook failed; the reconciler will catch up");
            }
        });
    }
    Ok(Json(WebhookAck { received: true }))
}
