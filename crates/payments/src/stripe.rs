//! The adapter for Stripe's HTTP API (or anything that speaks it).
//!
//! A payment is a PaymentIntent created with `confirm=true` and `capture_method=manual`: the
//! card is authorized at once and the money is taken by a later capture, after our database
//! has issued the tickets. Every POST carries our idempotency key in Stripe's
//! `Idempotency-Key` header, so a retried request never charges twice.
//!
//! Two ways to read a payment back:
//!
//! - [`retrieve`](PaymentProvider::retrieve) is `GET /v1/payment_intents/{id}` with the latest
//!   charge expanded. Reads by id are strongly consistent at Stripe: a capture or refund that
//!   Stripe acknowledged is visible at once. Whoever knows the `pi_…` uses this.
//! - [`lookup`](PaymentProvider::lookup), by our idempotency key, exists for the one case where
//!   the id is not known: the create's answer was lost. Stripe cannot look a payment up by
//!   idempotency key; re-sending the create to find out would *create* the payment if the first
//!   attempt never arrived (and would make a payment the customer never confirmed a second
//!   time, hours later), and Stripe offers no read-only `GET` of an idempotent request. So the
//!   key is also stored in the PaymentIntent's metadata and lookup finds it through the Search
//!   API, whose index is eventually consistent (Stripe documents under a minute, more during
//!   incidents). An empty search is therefore only "never happened" for an attempt older than
//!   [`StripeConfig::search_lag`] ([`lookup_lag`](PaymentProvider::lookup_lag) on the port);
//!   for a younger one it is "not known yet, ask again later". (Listing PaymentIntents by
//!   creation time is consistent but cannot filter on metadata; paging through every payment of
//!   the lag window to close that gap is possible but costly at on-sale rates, and not done.)
//!
//! Outcomes map onto the port as follows: a card error (HTTP 402, `card_error`) is a
//! `Declined` with Stripe's customer-facing message; a 5xx, 409 (the same key in flight),
//! 429 or a connection failure is `Unavailable`; no answer within the request timeout is
//! `Timeout`; any other 4xx is `Rejected` with Stripe's message. The API key never appears in
//! an error, a log line or `Debug` output.

use std::time::Duration;

use async_trait::async_trait;
use boxoffice_domain::payments::{
    Authorization, PaymentError, PaymentProvider, PaymentRequest, PaymentState,
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::Secret;

/// Where Stripe's API lives.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// How to reach Stripe.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// The secret API key (`sk_live_…`, `sk_test_…` or a restricted `rk_…`).
    pub api_key: Secret,
    /// The API's base URL, without a path: [`DEFAULT_BASE_URL`] in production, a local fake
    /// in tests.
    pub base_url: String,
    /// How long one request may take, connecting included, before it fails with
    /// [`PaymentError::Timeout`]. Default 15 s.
    pub request_timeout: Duration,
    /// How long establishing a connection may take. Default 5 s.
    pub connect_timeout: Duration,
    /// How long a new PaymentIntent may stay invisible to the Search API, which
    /// [`lookup`](PaymentProvider::lookup) reads. Default 60 s (Stripe documents "under a
    /// minute").
    pub search_lag: Duration,
    /// Sellers' Stripe Connect accounts (`acct_…`) by customer id: resale payouts are
    /// transfers to them. A seller without one keeps their payout SCHEDULED.
    pub connected_accounts: std::collections::HashMap<String, String>,
}

impl StripeConfig {
    /// The production API with default timeouts.
    pub fn new(api_key: impl Into<Secret>) -> Self {
        Self {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            search_lag: Duration::from_secs(60),
            connected_accounts: std::collections::HashMap::new(),
        }
    }

    pub fn with_connected_accounts(
        mut self,
        accounts: std::collections::HashMap<String, String>,
    ) -> Self {
        self.connected_accounts = accounts;
        self
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn with_search_lag(mut self, lag: Duration) -> Self {
        self.search_lag = lag;
        self
    }
}

/// A [`StripeConfig`] that cannot work. Never contains the key.
#[derive(Debug, thiserror::Error)]
pub enum StripeConfigError {
    #[error("the Stripe API key is empty")]
    EmptyApiKey,
    #[error("the Stripe API key contains characters that cannot be sent in an HTTP header")]
    InvalidApiKey,
    #[error("the Stripe base URL is invalid: {0}")]
    InvalidBaseUrl(String),
    #[error("building the HTTP client: {0}")]
    Client(String),
}

/// The Stripe [`PaymentProvider`]. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    /// The base URL without a trailing slash; request paths are appended to it.
    base_url: String,
    api_key: Secret,
    /// `Bearer <key>`, marked sensitive so that nothing prints it.
    auth: HeaderValue,
    request_timeout: Duration,
    search_lag: Duration,
    connected_accounts: std::collections::HashMap<String, String>,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("request_timeout", &self.request_timeout)
            .field("search_lag", &self.search_lag)
            .finish_non_exhaustive()
    }
}

impl Stripe {
    pub fn new(config: StripeConfig) -> Result<Self, StripeConfigError> {
        let key = config.api_key.expose();
        if key.is_empty() {
            return Err(StripeConfigError::EmptyApiKey);
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| StripeConfigError::InvalidApiKey)?;
        auth.set_sensitive(true);
        let url = Url::parse(&config.base_url)
            .map_err(|e| StripeConfigError::InvalidBaseUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(StripeConfigError::InvalidBaseUrl(
                "expected http(s)://host[:port][/path] without a query".into(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // The base URL is shown in Debug output; credentials go in the API key only.
            return Err(StripeConfigError::InvalidBaseUrl(
                "credentials do not belong in the base URL".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("boxoffice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StripeConfigError::Client(e.to_string()))?;
        Ok(Self {
            http,
            base_url: url.as_str().trim_end_matches('/').to_owned(),
            api_key: config.api_key,
            auth,
            request_timeout: config.request_timeout,
            search_lag: config.search_lag,
            connected_accounts: config.connected_accounts,
        })
    }

    /// Sends a form-encoded POST with our idempotency key.
    async fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(&str, &str)],
    ) -> Result<Reply, PaymentError> {
        let key = HeaderValue::from_str(idempotency_key).map_err(|_| {
            PaymentError::Rejected("the idempotency key cannot be sent in an HTTP header".into())
        })?;
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("Idempotency-Key", key)
            .body(body);
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, PaymentError> {
        let response = request
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        Ok(Reply {
            status,
            body: body.to_vec(),
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> PaymentError {
        if e.is_timeout() {
            return PaymentError::Timeout;
        }
        // The chain of causes says what went wrong ("connection refused"). The URL is left
        // out; nothing here ever held the key, but the message is scrubbed all the same.
        let e = e.without_url();
        let mut msg = format!("request to Stripe failed: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            msg.push_str(": ");
            msg.push_str(&c.to_string());
            cause = c.source();
        }
        PaymentError::Unavailable(self.scrub(msg))
    }

    /// Removes the API key from a message that came from elsewhere (Stripe's error text,
    /// a driver's error), in case it was ever echoed back.
    fn scrub(&self, msg: String) -> String {
        let key = self.api_key.expose();
        if !key.is_empty() && msg.contains(key) {
            msg.replace(key, "[redacted]")
        } else {
            msg
        }
    }

    /// The port's error for an unsuccessful answer that has no special meaning for the call.
    fn failure(&self, reply: &Reply) -> PaymentError {
        let status = reply.status;
        let message = reply
            .api_error()
            .and_then(|e| e.message)
            .unwrap_or_else(|| format!("Stripe answered {status}"));
        let message = self.scrub(message);
        match status.as_u16() {
            500..=599 => PaymentError::Unavailable(format!("Stripe answered {status}: {message}")),
            // The same idempotency key is being processed right now: the outcome is unknown.
            409 => PaymentError::Unavailable(format!("Stripe answered {status}: {message}")),
            429 => PaymentError::Unavailable(format!("Stripe rate limit: {message}")),
            _ => PaymentError::Rejected(message),
        }
    }

    /// The answer to a capture or cancel that failed because the PaymentIntent is already in
    /// some state: success if that state is the one asked for, a clear rejection otherwise.
    fn unexpected_state(
        &self,
        reply: &Reply,
        provider_ref: &str,
        done: &str,
    ) -> Result<(), PaymentError> {
        let err = reply.api_error();
        let current = err
            .as_ref()
            .filter(|e| e.code.as_deref() == Some("payment_intent_unexpected_state"))
            .and_then(|e| e.payment_intent.as_ref())
            .and_then(|pi| pi.status.as_deref());
        match current {
            Some(s) if s == done => Ok(()),
            Some("succeeded") => Err(PaymentError::Rejected(format!(
                "payment {provider_ref} was captured; refund it instead"
            ))),
            Some("canceled") => Err(PaymentError::Rejected(format!(
                "payment {provider_ref} was canceled"
            ))),
            _ => Err(self.failure(reply)),
        }
    }
}

/// An HTTP answer, read in full.
#[derive(Debug, Deserialize)]
struct Transfer {
    id: String,
}

struct Reply {
    status: StatusCode,
    body: Vec<u8>,
}

impl Reply {
    fn api_error(&self) -> Option<ApiError> {
        serde_json::from_slice::<ErrorEnvelope>(&self.body)
            .ok()
            .map(|e| e.error)
    }

    /// A successful answer's body. If it cannot be read, money may have moved all the same:
    /// the outcome is unknown.
    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, PaymentError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| PaymentError::Unavailable(format!("unreadable answer from Stripe: {e}")))
    }
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ApiError,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
    payment_intent: Option<PaymentIntentRef>,
}

#[derive(Debug, Deserialize)]
struct PaymentIntentRef {
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PaymentIntent {
    id: String,
    status: String,
    #[serde(default)]
    amount: i64,
    #[serde(default)]
    amount_capturable: i64,
    #[serde(default)]
    amount_received: i64,
    #[serde(default)]
    created: i64,
    #[serde(default)]
    latest_charge: Option<ChargeField>,
    #[serde(default)]
    last_payment_error: Option<LastPaymentError>,
}

#[derive(Debug, Deserialize)]
struct LastPaymentError {
    message: Option<String>,
}

/// `latest_charge` is an id unless expanded.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ChargeField {
    Expanded(Charge),
    Id(#[allow(dead_code)] String),
}

#[derive(Debug, Deserialize)]
struct Charge {
    #[serde(default)]
    refunded: bool,
    #[serde(default)]
    amount_refunded: i64,
    #[serde(default)]
    amount_captured: i64,
}

impl Charge {
    /// Stripe sets `refunded` once the whole amount was given back; the amounts say the same
    /// for answers that leave the flag out.
    fn fully_refunded(&self) -> bool {
        self.refunded || (self.amount_captured > 0 && self.amount_refunded >= self.amount_captured)
    }
}

#[derive(Debug, Deserialize)]
struct SearchResult {
    data: Vec<PaymentIntent>,
}

#[derive(Debug, Deserialize)]
struct Refund {
    status: Option<String>,
}

impl PaymentIntent {
    /// How far money moved, to pick the meaningful one should a search find several.
    fn rank(&self) -> u8 {
        match self.status.as_str() {
            "succeeded" => 4,
            "requires_capture" => 3,
            "processing" => 2,
            "canceled" => 1,
            _ => 0,
        }
    }

    fn state(&self) -> Result<PaymentState, PaymentError> {
        let provider_ref = self.id.clone();
        Ok(match self.status.as_str() {
            "requires_capture" => PaymentState::Authorized {
                provider_ref,
                amount_cents: nonzero_or(self.amount_capturable, self.amount),
            },
            "succeeded" => match &self.latest_charge {
                Some(ChargeField::Expanded(charge)) if charge.fully_refunded() => {
                    PaymentState::Refunded {
                        provider_ref,
                        amount_cents: nonzero_or(charge.amount_refunded, self.amount_received),
                    }
                }
                _ => PaymentState::Captured {
                    provider_ref,
                    amount_cents: nonzero_or(self.amount_received, self.amount),
                },
            },
            "canceled" => PaymentState::Voided { provider_ref },
            "requires_payment_method" | "requires_action" | "requires_confirmation" => {
                PaymentState::Declined
            }
            "processing" => {
                return Err(PaymentError::Unavailable(format!(
                    "payment {} is still processing at Stripe",
                    self.id
                )));
            }
            other => {
                return Err(PaymentError::Unavailable(format!(
                    "payment {} has a status this adapter does not know: {other}",
                    self.id
                )));
            }
        })
    }
}

fn nonzero_or(a: i64, b: i64) -> i64 {
    if a != 0 { a } else { b }
}

/// Provider refs are Stripe object ids (`pi_…`). Anything else is refused before it can
/// become part of a URL path.
fn check_id(provider_ref: &str) -> Result<(), PaymentError> {
    let ok = !provider_ref.is_empty()
        && provider_ref.len() <= 255
        && provider_ref
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PaymentError::Rejected(
            "the payment reference is not a Stripe id".into(),
        ))
    }
}

/// A string literal for Stripe's search query language, which escapes with backslashes.
fn search_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[async_trait]
impl PaymentProvider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    #[tracing::instrument(skip_all, fields(key = %req.idempotency_key, booking = %req.booking_ref))]
    async fn authorize(&self, req: &PaymentRequest) -> Result<Authorization, PaymentError> {
        let amount = req.amount_cents.to_string();
        let currency = req.currency.as_str().to_ascii_lowercase();
        let form = [
            ("amount", amount.as_str()),
            ("currency", currency.as_str()),
            ("payment_method", req.method.as_str()),
            ("confirm", "true"),
            ("capture_method", "manual"),
            // Without this, confirming server-side fails for accounts whose dashboard enables
            // redirect-based methods (Stripe then wants a return_url); we only take methods
            // that authorize in place.
            ("automatic_payment_methods[enabled]", "true"),
            ("automatic_payment_methods[allow_redirects]", "never"),
            ("description", req.description.as_str()),
            ("metadata[booking_ref]", req.booking_ref.as_str()),
            ("metadata[idempotency_key]", req.idempotency_key.as_str()),
        ];
        let reply = self
            .post("/v1/payment_intents", &req.idempotency_key, &form)
            .await?;
        if reply.status.is_success() {
            let pi: PaymentIntent = reply.parse()?;
            let declined = |reason: &str| Authorization::Declined {
                reason: reason.to_owned(),
            };
            return match pi.status.as_str() {
                // `succeeded` cannot happen with manual capture, but if it does the money is
                // reserved (indeed taken): approving is the truthful answer.
                "requires_capture" | "succeeded" => Ok(Authorization::Approved {
                    provider_ref: pi.id,
                }),
                "requires_action" => Ok(declined(
                    "The card requires authentication (such as 3D Secure), which this checkout \
                     does not support.",
                )),
                "requires_payment_method" => Ok(declined(
                    &self.scrub(
                        pi.last_payment_error
                            .and_then(|e| e.message)
                            .unwrap_or_else(|| "The payment method was refused.".to_owned()),
                    ),
                )),
                "requires_confirmation" => Ok(declined("The payment was not confirmed.")),
                "canceled" => Ok(declined("The payment was canceled.")),
                "processing" => Err(PaymentError::Unavailable(format!(
                    "payment {} is still processing at Stripe",
                    pi.id
                ))),
                other => Err(PaymentError::Unavailable(format!(
                    "payment {} has a status this adapter does not know: {other}",
                    pi.id
                ))),
            };
        }
        if reply.status == StatusCode::PAYMENT_REQUIRED
            && let Some(err) = reply.api_error()
            && err.kind.as_deref() == Some("card_error")
        {
            return Ok(Authorization::Declined {
                reason: self.scrub(
                    err.message
                        .unwrap_or_else(|| "Your card was declined.".to_owned()),
                ),
            });
        }
        Err(self.failure(&reply))
    }

    #[tracing::instrument(skip(self))]
    async fn capture(&self, provider_ref: &str, idempotency_key: &str) -> Result<(), PaymentError> {
        check_id(provider_ref)?;
        let reply = self
            .post(
                &format!("/v1/payment_intents/{provider_ref}/capture"),
                idempotency_key,
                &[],
            )
            .await?;
        if reply.status.is_success() {
            return Ok(());
        }
        self.unexpected_state(&reply, provider_ref, "succeeded")
    }

    #[tracing::instrument(skip(self))]
    async fn void(&self, provider_ref: &str, idempotency_key: &str) -> Result<(), PaymentError> {
        check_id(provider_ref)?;
        let reply = self
            .post(
                &format!("/v1/payment_intents/{provider_ref}/cancel"),
                idempotency_key,
                &[],
            )
            .await?;
        if reply.status.is_success() {
            return Ok(());
        }
        self.unexpected_state(&reply, provider_ref, "canceled")
    }

    #[tracing::instrument(skip(self))]
    async fn refund(
        &self,
        provider_ref: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<(), PaymentError> {
        check_id(provider_ref)?;
        let amount = amount_cents.to_string();
        let reply = self
            .post(
                "/v1/refunds",
                idempotency_key,
                &[
                    ("payment_intent", provider_ref),
                    ("amount", amount.as_str()),
                ],
            )
            .await?;
        if reply.status.is_success() {
            let refund: Refund = reply.parse()?;
            return match refund.status.as_deref() {
                Some("failed" | "canceled") => Err(PaymentError::Rejected(format!(
                    "the refund of payment {provider_ref} failed at Stripe"
                ))),
                _ => Ok(()),
            };
        }
        let already = reply
            .api_error()
            .is_some_and(|e| e.code.as_deref() == Some("charge_already_refunded"));
        if already {
            return Ok(());
        }
        Err(self.failure(&reply))
    }

    /// A transfer to the seller's connected account (Stripe Connect), when one is configured.
    #[tracing::instrument(skip(self))]
    async fn payout(
        &self,
        seller: &str,
        amount_cents: i64,
        currency: boxoffice_domain::money::Currency,
        idempotency_key: &str,
    ) -> Result<Option<String>, PaymentError> {
        let Some(account) = self.connected_accounts.get(seller) else {
            return Ok(None);
        };
        let amount = amount_cents.to_string();
        let currency = currency.as_str().to_ascii_lowercase();
        let reply = self
            .post(
                "/v1/transfers",
                idempotency_key,
                &[
                    ("amount", amount.as_str()),
                    ("currency", currency.as_str()),
                    ("destination", account.as_str()),
                    ("transfer_group", idempotency_key),
                ],
            )
            .await?;
        if !reply.status.is_success() {
            return Err(self.failure(&reply));
        }
        let transfer: Transfer = reply.parse()?;
        Ok(Some(transfer.id))
    }

    #[tracing::instrument(skip(self))]
    async fn retrieve(&self, provider_ref: &str) -> Result<PaymentState, PaymentError> {
        check_id(provider_ref)?;
        let mut url = Url::parse(&format!(
            "{}/v1/payment_intents/{provider_ref}",
            self.base_url
        ))
        .map_err(|e| PaymentError::Rejected(format!("payment intent URL: {e}")))?;
        // The charge carries the refunds; without it a refunded payment looks captured.
        url.query_pairs_mut()
            .append_pair("expand[]", "latest_charge");
        let reply = self.send(self.http.get(url)).await?;
        if !reply.status.is_success() {
            return Err(self.failure(&reply));
        }
        let pi: PaymentIntent = reply.parse()?;
        if pi.id != provider_ref {
            return Err(PaymentError::Unavailable(format!(
                "asked Stripe for {provider_ref}, got {}",
                pi.id
            )));
        }
        match pi.status.as_str() {
            // Between states: the port's "ask again later".
            "processing" => Ok(PaymentState::Unknown),
            "succeeded" if !matches!(pi.latest_charge, Some(ChargeField::Expanded(_))) => {
                Err(PaymentError::Unavailable(format!(
                    "Stripe answered payment {provider_ref} without its charge; cannot tell \
                     captured from refunded"
                )))
            }
            _ => pi.state(),
        }
    }

    fn lookup_lag(&self) -> Duration {
        self.search_lag
    }

    #[tracing::instrument(skip(self))]
    async fn lookup(&self, idempotency_key: &str) -> Result<PaymentState, PaymentError> {
        let mut url = Url::parse(&format!("{}/v1/payment_intents/search", self.base_url))
            .map_err(|e| PaymentError::Rejected(format!("search URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair(
                "query",
                &format!(
                    "metadata['idempotency_key']:{}",
                    search_literal(idempotency_key)
                ),
            )
            .append_pair("expand[]", "data.latest_charge")
            .append_pair("limit", "10");
        let reply = self.send(self.http.get(url)).await?;
        if !reply.status.is_success() {
            return Err(self.failure(&reply));
        }
        let result: SearchResult = reply.parse()?;
        match result.data.iter().max_by_key(|pi| (pi.rank(), pi.created)) {
            None => Ok(PaymentState::Unknown),
            Some(pi) => pi.state(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_the_path_are_refused() {
        assert!(check_id("pi_3MtwBwLkdIwHu7ix28a3tqPa").is_ok());
        for bad in [
            "",
            "pi_1/../../v1/refunds",
            "pi_1?x=1",
            "pi 1",
            "pi_1#",
            "pi_é",
        ] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn search_literals_escape_quotes_and_backslashes() {
        assert_eq!(search_literal("abc"), "'abc'");
        assert_eq!(search_literal(r"a'b\c"), r"'a\'b\\c'");
    }
}
