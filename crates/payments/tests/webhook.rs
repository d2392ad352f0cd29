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
