//! Stripe webhook signature verification.

use std::time::Duration;

use boxoffice_payments::webhook::{DEFAULT_TOLERANCE, signature_header};
use boxoffice_payments::{WebhookError, verify_webhook};
use proptest::prelude::*;
use time::OffsetDateTime;

const SECRET: &str = "whsec_test_secret";
const PAYLOAD: &[u8] =
    br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}"#;
const SIGNED_AT: i64 = 1_700_000_000;

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

fn verify(payload: &[u8], header: &str, now: i64) -> Result<String, WebhookError> {
    verify_webhook(payload, header, SECRET, DEFAULT_TOLERANCE, at(now)).map(|e| e.id)
}

#[test]
fn signs_exactly_as_stripe_does() {
    // Computed independently: HMAC-SHA256("whsec_test_secret", "1700000000." + PAYLOAD).
    assert_eq!(
        signature_header(PAYLOAD, SECRET, SIGNED_AT),
        "t=1700000000,v1=e82e2723b86d3a69bfeb5e77763034e00649f4d95f4a1ea5e1d18afdef323945"
    );
}

#[test]
fn a_genuine_delivery_gives_its_event() {
    let header = signature_header(PAYLOAD, SECRET, SIGNED_AT);
    let event = verify_webhook(
        PAYLOAD,
        &header,
        SECRET,
        DEFAULT_TOLERANCE,
        at(SIGNED_AT + 10),
    )
    .unwrap();
    assert_eq!(event.id, "evt_1");
    assert_eq!(event.event_type, "payment_intent.succeeded");
    assert_eq!(event.data.object["id"], "pi_1");
}

#[test]
fn a_tampered_body_is_refused() {
    let header = signature_header(PAYLOAD, SECRET, SIGNED_AT);
    let tampered = String::from_utf8(PAYLOAD.to_vec())
        .unwrap()
        .replace("pi_1", "pi_2");
    assert_eq!(
        verify(tampered.as_bytes(), &header, SIGNED_AT),
        Err(WebhookError::SignatureMismatch)
    );
    // The timestamp is signed too.
    let moved = header.replace("t=1700000000", "t=1700000001");
    assert_eq!(
        verify(PAYLOAD, &moved, SIGNED_AT),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn another_secret_is_refused() {
    let header = signature_header(PAYLOAD, "whsec_someone_else", SIGNED_AT);
    assert_eq!(
        verify(PAYLOAD, &header, SIGNED_AT),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn old_and_future_timestamps_are_refused() {
    let header = signature_header(PAYLOAD, SECRET, SIGNED_AT);
    let tolerance = 300;
    assert_eq!(
        verify(PAYLOAD, &header, SIGNED_AT + tolerance).unwrap(),
        "evt_1"
    );
    assert_eq!(
        verify(PAYLOAD, &header, SIGNED_AT - tolerance).unwrap(),
        "evt_1"
    );
    assert_eq!(
        verify(PAYLOAD, &header, SIGNED_AT + tolerance + 1),
        Err(WebhookError::TimestampOutsideTolerance)
    );
    assert_eq!(
        verify(PAYLOAD, &header, SIGNED_AT - tolerance - 1),
        Err(WebhookError::TimestampOutsideTolerance)
    );
    let strict = verify_webhook(
        PAYLOAD,
        &header,
        SECRET,
        Duration::from_secs(5),
        at(SIGNED_AT + 6),
    );
    assert_eq!(strict, Err(WebhookError::TimestampOutsideTolerance));
}

#[test]
fn one_matching_signature_among_several_is_enough() {
    let good = signature_header(PAYLOAD, SECRET, SIGNED_AT);
    let good_sig = good.split_once(",v1=").unwrap().1;
    let old_secret = signature_header(PAYLOAD, "whsec_rolled_away", SIGNED_AT);
    let old_sig = old_secret.split_once(",v1=").unwrap().1;
    let header = format!("t={SIGNED_AT},v1={old_sig},v0=deadbeef,v1={good_sig}");
    assert_eq!(verify(PAYLOAD, &header, SIGNED_AT).unwrap(), "evt_1");
    let header = format!("t={SIGNED_AT}, v1={good_sig} ,v1=nothex");
    assert_eq!(verify(PAYLOAD, &header, SIGNED_AT).unwrap(), "evt_1");
    let none_good = format!("t={SIGNED_AT},v1={old_sig},v1={}", "00".repeat(32));
    assert_eq!(
        verify(PAYLOAD, &none_good, SIGNED_AT),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn malformed_headers_are_refused() {
    let good = signature_header(PAYLOAD, SECRET, SIGNED_AT);
    let sig = good.split_once(",v1=").unwrap().1;
    for header in [
        String::new(),
        "garbage".to_owned(),
        format!("v1={sig}"),
        format!("t=soon,v1={sig}"),
        format!("t={SIGNED_AT},t={SIGNED_AT},v1={sig}"),
        format!("t={SIGNED_AT},{sig}"),
    ] {
        assert_eq!(
            verify(PAYLOAD, &header, SIGNED_AT),
            Err(WebhookError::MalformedHeader),
            "{header:?}"
        );
    }
    assert_eq!(
        verify(PAYLOAD, &format!("t={SIGNED_AT}"), SIGNED_AT),
        Err(WebhookError::NoSignature)
    );
    assert_eq!(
        verify(PAYLOAD, &format!("t={SIGNED_AT},v0={sig}"), SIGNED_AT),
        Err(WebhookError::NoSignature)
    );
}

#[test]
fn a_genuine_body_that_is_not_an_event_is_refused() {
    let body = br#"{"hello":"world"}"#;
    let header = signature_header(body, SECRET, SIGNED_AT);
    assert!(matches!(
        verify(body, &header, SIGNED_AT),
        Err(WebhookError::InvalidPayload(_))
    ));
}

#[test]
fn errors_never_show_the_secret() {
    let header = signature_header(PAYLOAD, SECRET, SIGNED_AT);
    for result in [
        verify(b"{}", &header, SIGNED_AT),
        verify(PAYLOAD, &header, SIGNED_AT + 10_000),
        verify(PAYLOAD, "t=1", SIGNED_AT),
    ] {
        let err = result.unwrap_err();
        assert!(!format!("{err} {err:?}").contains(SECRET), "{err:?}");
    }
}

proptest! {
    #[test]
    fn verification_never_panics(
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        header in ".{0,200}",
        now in any::<i64>(),
        tolerance in any::<u64>(),
    ) {
        let now = OffsetDateTime::from_unix_timestamp(now.clamp(-377_705_116_800, 253_402_300_799))
            .unwrap();
        let _ = verify_webhook(&payload, &header, SECRET, Duration::from_secs(tolerance), now);
    }

    #[test]
    fn whatever_is_signed_verifies_and_any_flipped_bit_does_not(
        id in "evt_[A-Za-z0-9]{1,24}",
        secret in "[ -~]{0,64}",
        signed_at in 0i64..4_000_000_000,
        flip in any::<prop::sample::Index>(),
    ) {
        let payload = format!(r#"{{"id":"{id}","type":"charge.refunded","data":{{"object":{{}}}}}}"#);
        let header = signature_header(payload.as_bytes(), &secret, signed_at);
        let event = verify_webhook(
            payload.as_bytes(), &header, &secret, DEFAULT_TOLERANCE, at(signed_at),
        ).unwrap();
        prop_assert_eq!(event.id, id);

        let mut tampered = payload.into_bytes();
        let i = flip.index(tampered.len());
        tampered[i] ^= 0x01;
        prop_assert_eq!(
            verify_webhook(&tampered, &header, &secret, DEFAULT_TOLERANCE, at(signed_at)),
            Err(WebhookError::SignatureMismatch)
        );
    }
}

/// What each kind of event means for a payment, from payloads shaped as Stripe sends them
/// (API version 2024+: `latest_charge`, ids rather than expanded objects).
mod payment_events {
    use boxoffice_payments::{PaymentEvent, WebhookEvent};
    use serde_json::{Value, json};

    fn event(event_type: &str, object: Value) -> WebhookEvent {
        serde_json::from_value(json!({
            "id": "evt_3PxYz2LkdIwHu7ix0abcdEFG",
            "object": "event",
            "api_version": "2024-06-20",
            "created": 1_700_000_100,
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": "req_8XyZ", "idempotency_key": "bo_4f2a_capture"},
            "type": event_type,
            "data": {"object": object}
        }))
        .expect("an event envelope")
    }

    fn intent(status: &str) -> Value {
        json!({
            "id": "pi_3PxYz2LkdIwHu7ix1gHjKlMn",
            "object": "payment_intent",
            "amount": 25_000,
            "amount_capturable": if status == "requires_capture" { 25_000 } else { 0 },
            "amount_received": if status == "succeeded" { 25_000 } else { 0 },
            "capture_method": "manual",
            "client_secret": "pi_3PxYz2LkdIwHu7ix1gHjKlMn_secret_abc",
            "confirmation_method": "automatic",
            "created": 1_700_000_000,
            "currency": "usd",
            "description": "Race Night (1 tickets)",
            "last_payment_error": null,
            "latest_charge": "ch_3PxYz2LkdIwHu7ix1aBcDeFg",
            "livemode": false,
            "metadata": {"booking_ref": "0192f0c4-7a8e-7c3b-9d2e-5f1a2b3c4d5e",
                         "idempotency_key": "bo_4f2a9c"},
            "payment_method": "pm_1PxYz2LkdIwHu7ixQwErTyUi",
            "status": status
        })
    }

    fn charge(amount_refunded: i64, refunded: bool, payment_intent: Value) -> Value {
        json!({
            "id": "ch_3PxYz2LkdIwHu7ix1aBcDeFg",
            "object": "charge",
            "amount": 25_000,
            "amount_captured": 25_000,
            "amount_refunded": amount_refunded,
            "balance_transaction": "txn_3PxYz2LkdIwHu7ix1zXcVbNm",
            "captured": true,
            "currency": "usd",
            "disputed": false,
            "metadata": {},
            "paid": true,
            "payment_intent": payment_intent,
            "refunded": refunded,
            "refunds": {"object": "list", "data": [], "has_more": false,
                        "url": "/v1/charges/ch_3PxYz2LkdIwHu7ix1aBcDeFg/refunds"},
            "status": "succeeded"
        })
    }

    const PI: &str = "pi_3PxYz2LkdIwHu7ix1gHjKlMn";

    #[test]
    fn payment_intent_events() {
        assert_eq!(
            event(
                "payment_intent.amount_capturable_updated",
                intent("requires_capture")
            )
            .payment_event(),
            Some(PaymentEvent::Authorized {
                provider_ref: PI.into(),
                amount_cents: 25_000
            })
        );
        assert_eq!(
            event("payment_intent.succeeded", intent("succeeded")).payment_event(),
            Some(PaymentEvent::Succeeded {
                provider_ref: PI.into(),
                amount_cents: 25_000
            })
        );
        let mut canceled = intent("canceled");
        canceled["cancellation_reason"] = json!("automatic");
        assert_eq!(
            event("payment_intent.canceled", canceled).payment_event(),
            Some(PaymentEvent::Canceled {
                provider_ref: PI.into()
            })
        );
        let mut failed = intent("requires_payment_method");
        failed["last_payment_error"] = json!({
            "charge": "ch_3PxYz2LkdIwHu7ix1aBcDeFg", "code": "card_declined",
            "decline_code": "generic_decline", "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": "Your card was declined.", "type": "card_error"
        });
        let failed = event("payment_intent.payment_failed", failed);
        assert_eq!(
            failed.payment_event(),
            Some(PaymentEvent::PaymentFailed {
                provider_ref: PI.into(),
                reason: Some("Your card was declined.".into())
            })
        );
        assert_eq!(failed.idempotency_key(), Some("bo_4f2a9c"));
        assert_eq!(failed.payment_event().unwrap().provider_ref(), PI);
    }

    #[test]
    fn a_full_refund_is_refunded_and_a_partial_one_is_not() {
        let full = event("charge.refunded", charge(25_000, true, json!(PI)));
        assert_eq!(
            full.payment_event(),
            Some(PaymentEvent::Refunded {
                provider_ref: PI.into(),
                amount_cents: 25_000
            })
        );
        // Charges carry no idempotency key of ours.
        assert_eq!(full.idempotency_key(), None);
        assert_eq!(
            event("charge.refunded", charge(5_000, false, json!(PI))).payment_event(),
            Some(PaymentEvent::PartiallyRefunded {
                provider_ref: PI.into(),
                amount_refunded_cents: 5_000
            })
        );
        // An expanded PaymentIntent names it as well as its id.
        assert_eq!(
            event("charge.refunded", charge(25_000, true, intent("succeeded")))
                .payment_event()
                .map(|e| e.provider_ref().to_owned()),
            Some(PI.to_owned())
        );
        // A charge made without a PaymentIntent is none of our payments.
        assert_eq!(
            event("charge.refunded", charge(25_000, true, Value::Null)).payment_event(),
            None
        );
    }

    #[test]
    fn a_dispute_names_its_payment() {
        let dispute = json!({
            "id": "dp_1PxYz2LkdIwHu7ixAsDfGhJk",
            "object": "dispute",
            "amount": 25_000,
            "balance_transactions": [],
            "charge": "ch_3PxYz2LkdIwHu7ix1aBcDeFg",
            "created": 1_700_000_200,
            "currency": "usd",
            "evidence_details": {"due_by": 1_700_900_000, "has_evidence": false,
                                 "past_due": false, "submission_count": 0},
            "is_charge_refundable": false,
            "livemode": false,
            "metadata": {},
            "payment_intent": PI,
            "reason": "fraudulent",
            "status": "needs_response"
        });
        assert_eq!(
            event("charge.dispute.created", dispute).payment_event(),
            Some(PaymentEvent::Disputed {
                provider_ref: PI.into(),
                dispute_id: "dp_1PxYz2LkdIwHu7ixAsDfGhJk".into(),
                amount_cents: 25_000,
                reason: Some("fraudulent".into())
            })
        );
    }

    #[test]
    fn other_events_and_mismatched_objects_mean_nothing() {
        assert_eq!(
            event("payment_intent.created", intent("requires_payment_method")).payment_event(),
            None
        );
        assert_eq!(
            event(
                "customer.created",
                json!({"id": "cus_1", "object": "customer"})
            )
            .payment_event(),
            None
        );
        // The type says PaymentIntent but the object is not one: refused, not guessed.
        assert_eq!(
            event("payment_intent.succeeded", charge(0, false, json!(PI))).payment_event(),
            None
        );
        let mut no_id = intent("succeeded");
        no_id["id"] = json!("");
        assert_eq!(
            event("payment_intent.succeeded", no_id).payment_event(),
            None
        );
    }
}
