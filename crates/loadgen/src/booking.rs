//! The booking scenario: each iteration is one purchase — `POST /v1/attempt` (best available,
//! two seats) then `POST /v1/commit` with a fresh idempotency key and the sandbox's
//! `pm_card_visa` — so a successful commit is one confirmed booking with tickets and a
//! captured payment.
//!
//! Set-up creates the events to sell (many, so that buyers spread over them as during a
//! normal day; `--events 1` makes it a single on-sale rush) and signs customer tokens with the
//! server's HS256 secret. Customers rotate so that no one reaches the per-customer limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::Method;
use serde::Serialize;
use serde_json::{Value, json};

use crate::driver::{BoxFuture, Http, Rng, Scenario};

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct BookingOptions {
    pub events: usize,
    pub rows: u32,
    pub seats_per_row: u32,
    pub quantity: u32,
    pub customers: usize,
    pub jwt_secret: String,
    /// `seated` (best available in numbered rows) or `ga` (general admission).
    pub kind: String,
}

pub struct BookingFlow {
    events: Vec<String>,
    tokens: Vec<String>,
    next: AtomicUsize,
    body_section: &'static str,
    quantity: u32,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: String,
    roles: &'a [&'a str],
    exp: u64,
}

pub(crate) fn sign(secret: &str, sub: String, roles: &[&str]) -> anyhow::Result<String> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 6 * 3600;
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &Claims { sub, roles, exp },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

impl BookingFlow {
    /// Creates the events and the customers' tokens.
    pub async fn setup(addr: std::net::SocketAddr, o: &BookingOptions) -> anyhow::Result<Self> {
        let organizer = sign(&o.jwt_secret, "bench-organizer".into(), &["organizer"])?;
        let auth = format!("Bearer {organizer}");
        let mut http = Http::for_setup(addr)?;
        let (section, body_section) = match o.kind.as_str() {
            "seated" => (
                json!({"name": "Floor", "rows": o.rows, "seatsPerRow": o.seats_per_row, "priceCents": 9900}),
                "Floor",
            ),
            "ga" => (
                json!({"name": "Pit", "capacity": o.rows * o.seats_per_row, "priceCents": 4900}),
                "Pit",
            ),
            other => bail!("unknown kind `{other}`: seated or ga"),
        };
        let mut events = Vec::with_capacity(o.events);
        for i in 0..o.events {
            let body = json!({
                "name": format!("Benchmark Night {i}"), "category": "concert",
                "startsAt": "2099-06-01T19:30:00Z", "currency": "USD",
                "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S",
                          "city": "Seattle", "zipCode": "98134", "country": "US",
                          "lat": 47.5952, "lon": -122.3316},
                "sections": [section],
                "policies": {"maxTicketsPerCustomer": 8}
            });
            let answer = http
                .request(
                    "setup",
                    Method::POST,
                    "/v1/events",
                    &[("authorization", &auth)],
                    Some(Bytes::from(body.to_string())),
                )
                .await
                .context("creating an event")?;
            if !answer.status.is_success() {
                bail!(
                    "creating an event: {} {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                );
            }
            let v: Value = serde_json::from_slice(&answer.body)?;
            events.push(
                v["eventId"]
                    .as_str()
                    .context("no eventId in the answer")?
                    .to_owned(),
            );
        }
        let tokens = (0..o.customers)
            .map(|i| sign(&o.jwt_secret, format!("bench-buyer-{i}"), &["customer"]))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            events,
            tokens,
            next: AtomicUsize::new(0),
            body_section,
            quantity: o.quantity,
        })
    }

    /// Seats these events can sell before running out.
    pub fn capacity(o: &BookingOptions) -> u64 {
        o.events as u64 * u64::from(o.rows) * u64::from(o.seats_per_row)
    }
}

impl Scenario for BookingFlow {
    fn name(&self) -> String {
        "booking".into()
    }

    fn iteration<'a>(&'a self, http: &'a mut Http, _rng: &'a mut Rng) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let event = &self.events[n % self.events.len()];
            let token = &self.tokens[(n / self.events.len()) % self.tokens.len()];
            let auth = format!("Bearer {token}");
            let attempt =
                json!({"eventId": event, "section": self.body_section, "quantity": self.quantity});
            let Some(held) = http
                .request(
                    "attempt",
                    Method::POST,
                    "/v1/attempt",
                    &[("authorization", &auth)],
                    Some(Bytes::from(attempt.to_string())),
                )
                .await
            else {
                return;
            };
            if !held.status.is_success() {
                // Sold out or contended: nothing to pay for. Back off a little so a sold-out
                // run does not turn into a tight loop of errors.
                tokio::time::sleep(Duration::from_millis(1)).await;
                return;
            }
            let Some(booking) = serde_json::from_slice::<Value>(&held.body)
                .ok()
                .and_then(|v| v["bookingId"].as_str().map(str::to_owned))
            else {
                return;
            };
            let key = format!("bench-{n}");
            let commit = json!({"bookingId": booking, "paymentMethod": "pm_card_visa"});
            http.request(
                "commit",
                Method::POST,
                "/v1/commit",
                &[("authorization", &auth), ("idempotency-key", &key)],
                Some(Bytes::from(commit.to_string())),
            )
            .await;
        })
    }
}
