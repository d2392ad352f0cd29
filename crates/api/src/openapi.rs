//! The OpenAPI document, assembled from the handlers' annotations.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "boxoffice",
        description = "Event ticketing: search events, hold seats, pay once, get tickets, cancel and resell.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "events", description = "The event catalog"),
        (name = "booking", description = "Holding seats, paying once, tickets, cancellation"),
        (name = "resale", description = "Listing tickets for resale, buying them, sellers' payouts"),
        (name = "tickets", description = "Tickets people carry: QR codes, transfers, revocations"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}
