//! Verification of Stripe's signed webhook deliveries.
//!
//! Stripe signs each delivery with the endpoint's signing secret (`whsec_…`) and sends
//! `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, where each `v1` is
//! HMAC-SHA256 over `"{t}.{raw body}"` (several while a secret is being rolled). A delivery
//! is genuine when one `v1` matches, compared in constant time, and fresh when `t` is within a
//! tolerance of now, which is what stops an old captured delivery from being replayed.
//!
//! The route that receives webhooks must hand [`verify_webhook`] the body exactly as received
//! (bytes, before any JSON parsing) and the `Stripe-Signature` header's value.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// Stripe's own libraries allow five minutes between signing and verifying.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A verified webhook event. Only the envelope is typed; `data.object` is the Stripe object
/// the event is about (a PaymentIntent, a Charge, a Refund…), as Stripe sent it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WebhookEvent {
    /// `evt_…`; Stripe may deliver an event more than once, so handlers dedupe on it.
    pub id: String,
    /// e.g. `payment_intent.succeeded`, `charge.refunded`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When Stripe created the event (unix seconds).
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default)]
    pub livemode: Option<bool>,
    pub data: WebhookEventData,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WebhookEventData {
    pub object: serde_json::Value,
}

/// What a verified event says about one of our payments, named by its PaymentIntent
/// (`provider_ref`, the `pi_…` our payments table stores). Events that concern no payment of
/// ours (a charge without a PaymentIntent, other objects) have none.
///
/// A webhook is a hint, not the truth: Stripe delivers events late, twice and out of order.
/// Whoever acts on one should [`retrieve`](boxoffice_domain::payments::PaymentProvider::retrieve)
/// the payment and act on what that answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    /// `payment_intent.amount_capturable_updated`: funds reserved, waiting for our capture.
    Authorized {
        provider_ref: String,
        amount_cents: i64,
    },
    /// `payment_intent.succeeded`: the money was taken.
    Succeeded {
        provider_ref: String,
        amount_cents: i64,
    },
    /// `payment_intent.canceled`: the reservation was released (by us, or by Stripe when the
    /// authorization expired).
    Canceled { provider_ref: String },
    /// `payment_intent.payment_failed`: the card was refused; nothing is reserved.
    PaymentFailed {
        provider_ref: String,
        /// Stripe's customer-facing message, when it gave one.
        reason: Option<String>,
    },
    /// `charge.refunded` where everything taken was given back.
    Refunded {
        provider_ref: String,
        amount_cents: i64,
    },
    /// `charge.refunded` for part of the amount: money is still taken.
    PartiallyRefunded {
        provider_ref: String,
        amount_refunded_cents: i64,
    },
    /// `charge.dispute.created`: the cardholder's bank is pulling the money back.
    Disputed {
        provider_ref: String,
        dispute_id: String,
        amount_cents: i64,
        reason: Option<String>,
    },
}

impl PaymentEvent {
    /// The PaymentIntent the event is about.
    pub fn provider_ref(&self) -> &str {
        match self {
            PaymentEvent::Authorized { provider_ref, .. }
            | PaymentEvent::Succeeded { provider_ref, .. }
            | PaymentEvent::Canceled { provider_ref }
            | PaymentEvent::PaymentFailed { provider_ref, .. }
            | PaymentEvent::Refunded { provider_ref, .. }
            | PaymentEvent::PartiallyRefunded { provider_ref, .. }
            | PaymentEvent::Disputed { provider_ref, .. } => provider_ref,
        }
    }
}

impl WebhookEvent {
    /// The typed meaning of this event for a payment of ours, if it has one.
    pub fn payment_event(&self) -> Option<PaymentEvent> {
        let object = &self.data.object;
        let int = |field: &str| object.get(field).and_then(serde_json::Value::as_i64);
        let id = || {
            object
                .get("id")
                .and_then(serde_json::Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
        };
        let is =
            |kind: &str| object.get("object").and_then(serde_json::Value::as_str) == Some(kind);
        match self.event_type.as_str() {
            "payment_intent.amount_capturable_updated" if is("payment_intent") => {
                Some(PaymentEvent::Authorized {
                    provider_ref: id()?,
                    amount_cents: int("amount_capturable")
                        .filter(|a| *a > 0)
                        .or(int("amount"))?,
                })
            }
            "payment_intent.succeeded" if is("payment_intent") => Some(PaymentEvent::Succeeded {
                provider_ref: id()?,
                amount_cents: int("amount_received")
                    .filter(|a| *a > 0)
                    .or(int("amount"))?,
            }),
            "payment_intent.canceled" if is("payment_intent") => Some(PaymentEvent::Canceled {
                provider_ref: id()?,
            }),
            "payment_intent.payment_failed" if is("payment_intent") => {
                Some(PaymentEvent::PaymentFailed {
                    provider_ref: id()?,
                    reason: object
                        .pointer("/last_payment_error/message")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned),
                })
            }
            "charge.refunded" if is("charge") => {
                let provider_ref = object_id(object.get("payment_intent"))?;
                let amount = int("amount")?;
                let refunded = int("amount_refunded").unwrap_or(0);
                let flagged = object.get("refunded").and_then(serde_json::Value::as_bool);
                if refunded >= amount || flagged == Some(true) {
                    Some(PaymentEvent::Refunded {
                        provider_ref,
                        amount_cents: refunded,
                    })
                } else {
                    Some(PaymentEvent::PartiallyRefunded {
                        provider_ref,
                        amount_refunded_cents: refunded,
                    })
                }
            }
            "charge.dispute.created" if is("dispute") => Some(PaymentEvent::Disputed {
                provider_ref: object_id(object.get("payment_intent"))?,
                dispute_id: id()?,
                amount_cents: int("amount")?,
                reason: object
                    .get("reason")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned),
            }),
            _ => None,
        }
    }

    /// Our idempotency key, from the PaymentIntent's metadata, for `payment_intent.*` events.
    /// It links a payment whose create answer was lost (we never learnt its `pi_…`) to the
    /// attempt in our payments table.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.data
            .object
            .pointer("/metadata/idempotency_key")
            .and_then(serde_json::Value::as_str)
    }
}

/// A reference to another object: its id, or the object itself when expanded. `None` for null.
fn object_id(field: Option<&serde_json::Value>) -> Option<String> {
    let id = match field? {
        serde_json::Value::String(id) => id.as_str(),
        serde_json::Value::Object(o) => o.get("id")?.as_str()?,
        _ => return None,
    };
    (!id.is_empty()).then(|| id.to_owned())
}

/// Why a delivery was refused. Every variant means "answer 400 and do nothing"; none says
/// anything about the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The header is not `t=<unix>,v1=<hex>…` (no timestamp, two timestamps, a part without
    /// `=`).
    #[error("malformed Stripe-Signature header")]
    MalformedHeader,
    /// The header carries no `v1` signature.
    #[error("the Stripe-Signature header has no v1 signature")]
    NoSignature,
    /// No `v1` signature matches the payload under this secret.
    #[error("no signature matches the payload")]
    SignatureMismatch,
    /// Genuine, but signed too long ago (or too far in the future): possibly a replay.
    #[error("the webhook timestamp is outside the tolerance")]
    TimestampOutsideTolerance,
    /// Genuine, but not a Stripe event envelope.
    #[error("the webhook payload is not a Stripe event: {0}")]
    InvalidPayload(String),
}

/// The parsed `Stripe-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SignatureHeader {
    timestamp: i64,
    /// Decoded `v1` signatures; entries that are not hex are dropped, since they can match
    /// nothing.
    v1: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<SignatureHeader, WebhookError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    let mut saw_v1 = false;
    for part in header.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (key, value) = part.split_once('=').ok_or(WebhookError::MalformedHeader)?;
        match key.trim() {
            "t" => {
                let value = value.trim();
                if timestamp.is_some()
                    || value.is_empty()
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(WebhookError::MalformedHeader);
                }
                timestamp = Some(value.parse().map_err(|_| WebhookError::MalformedHeader)?);
            }
            "v1" => {
                saw_v1 = true;
                if let Some(sig) = decode_hex(value.trim()) {
                    v1.push(sig);
                }
            }
            // Other schemes (v0 is Stripe's test-mode scheme) are not ours to check.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedHeader)?;
    if !saw_v1 {
        return Err(WebhookError::NoSignature);
    }
    Ok(SignatureHeader { timestamp, v1 })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// The MAC over Stripe's signed payload, `"{t}.{raw body}"`, ready to finalize or verify.
fn mac(payload: &[u8], timestamp: i64, secret: &str) -> HmacSha256 {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// Checks a webhook delivery and returns its event.
///
/// `payload` is the raw request body, `stripe_signature_header` the `Stripe-Signature`
/// header's value, `secret` the endpoint's signing secret, `tolerance` how far the signing
/// time may be from `now` in either direction ([`DEFAULT_TOLERANCE`] is Stripe's choice).
/// The signature is checked before the timestamp and before the body is parsed, so nothing
/// about an unauthenticated body is looked at beyond its bytes.
pub fn verify_webhook(
    payload: &[u8],
    stripe_signature_header: &str,
    secret: &str,
    tolerance: Duration,
    now: OffsetDateTime,
) -> Result<WebhookEvent, WebhookError> {
    let header = parse_header(stripe_signature_header)?;
    let expected = mac(payload, header.timestamp, secret);
    // `verify_slice` compares in constant time; each candidate gets a fresh copy of the MAC.
    let genuine = header
        .v1
        .iter()
        .any(|sig| expected.clone().verify_slice(sig).is_ok());
    if !genuine {
        return Err(WebhookError::SignatureMismatch);
    }
    let age = i128::from(now.unix_timestamp()) - i128::from(header.timestamp);
    if age.unsigned_abs() > u128::from(tolerance.as_secs()) {
        return Err(WebhookError::TimestampOutsideTolerance);
    }
    serde_json::from_slice(payload).map_err(|e| WebhookError::InvalidPayload(e.to_string()))
}

/// The `Stripe-Signature` header Stripe would send for `payload` signed at `timestamp` (unix
/// seconds) with `secret`. For tests and local fakes of Stripe, such as the webhook route's.
pub fn signature_header(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let sig = mac(payload, timestamp, secret).finalize().into_bytes();
    format!("t={timestamp},v1={}", encode_hex(&sig))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_timestamp_and_every_v1() {
        let h = parse_header("t=12,v1=00ff,v0=abcd,v1=0A0b").unwrap();
        assert_eq!(h.timestamp, 12);
        assert_eq!(h.v1, vec![vec![0x00, 0xff], vec![0x0a, 0x0b]]);
    }

    #[test]
    fn refuses_malformed_headers() {
        for h in [
            "",
            "v1=00",
            "t=,v1=00",
            "t=-5,v1=00",
            "t=1,t=2,v1=00",
            "t=1,junk",
            "t=x,v1=00",
        ] {
            assert_eq!(parse_header(h), Err(WebhookError::MalformedHeader), "{h:?}");
        }
        assert_eq!(parse_header("t=1"), Err(WebhookError::NoSignature));
        assert_eq!(parse_header("t=1,v0=00"), Err(WebhookError::NoSignature));
        assert_eq!(parse_header("t=1,v1=zz").map(|h| h.v1), Ok(vec![]));
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_hex(&encode_hex(&bytes)), Some(bytes));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("gg"), None);
    }

    proptest! {
        #[test]
        fn header_parser_never_panics(header in ".{0,200}") {
            let _ = parse_header(&header);
        }

        #[test]
        fn structured_headers_never_panic(
            parts in proptest::collection::vec(("[tv0-9 ]{0,3}", "[-0-9a-fA-F ,=]{0,70}"), 0..6)
        ) {
            let header = parts
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let _ = parse_header(&header);
        }
    }
}
