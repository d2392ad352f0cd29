//! The fake PSP, driven by boxoffice's real Stripe adapter where it can be (so the fake is
//! proven to speak what the adapter speaks) and by raw HTTP where the test needs to see the
//! wire: idempotency keys, faults, the ledger.

use std::time::{Duration, Instant};

use boxoffice_domain::payments::{
    Authorization, PaymentError, PaymentProvider, PaymentRequest, PaymentState,
};
use boxoffice_fakepsp::FakePsp;
use boxoffice_payments::{Stripe, StripeConfig};
use serde_json::{Value, json};

const KEY: &str = "sk_test_fake";

fn adapter(fake: &FakePsp, timeout: Duration) -> Stripe {
    Stripe::new(
        StripeConfig::new(KEY)
            .with_base_url(fake.url())
            .with_request_timeout(timeout)
            .with_search_lag(Duration::ZERO),
    )
    .expect("adapter")
}

fn request(key: &str, method: &str) -> PaymentRequest {
    PaymentRequest {
        idempotency_key: key.to_owned(),
        amount_cents: 5_000,
        currency: "USD".parse().expect("currency"),
        method: method.to_owned(),
        description: "Race Night (1 tickets)".to_owned(),
        booking_ref: format!("booking-{key}"),
    }
}

async fn approve(psp: &Stripe, key: &str) -> String {
    match psp.authorize(&request(key, "pm_card_visa")).await {
        Ok(Authorization::Approved { provider_ref }) => provider_ref,
        other => panic!("expected approval, got {other:?}"),
    }
}

async fn faults(fake: &FakePsp, faults: Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/__faults", fake.url()))
        .json(&faults)
        .send()
        .await
        .expect("faults");
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

async fn get(fake: &FakePsp, path: &str) -> Value {
    reqwest::get(format!("{}{path}", fake.url()))
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

/// The PaymentIntent the ledger holds for our idempotency key.
async fn ledger_entry(fake: &FakePsp, key: &str) -> Option<Value> {
    get(fake, "/__ledger").await["payment_intents"]
        .as_array()
        .expect("intents")
        .iter()
        .find(|pi| pi["metadata"]["idempotency_key"] == key)
        .cloned()
}

#[tokio::test]
async fn the_adapter_runs_every_operation_against_the_fake() {
    let fake = FakePsp::start().await.expect("fake");
    let psp = adapter(&fake, Duration::from_secs(5));

    let id = approve(&psp, "k1").await;
    assert!(matches!(
        psp.retrieve(&id).await,
        Ok(PaymentState::Authorized { .. })
    ));
    assert!(matches!(
        psp.lookup("k1").await,
        Ok(PaymentState::Authorized { .. })
    ));
    psp.capture(&id, "k1_capture").await.expect("capture");
    psp.capture(&id, "k1_capture")
        .await
        .expect("a replayed capture");
    psp.capture(&id, "k1_capture_again")
        .await
        .expect("capturing a captured payment");
    assert!(matches!(
        psp.retrieve(&id).await,
        Ok(PaymentState::Captured {
            amount_cents: 5_000,
            ..
        })
    ));
    psp.refund(&id, 5_000, "k1_refund").await.expect("refund");
    psp.refund(&id, 5_000, "k1_refund_again")
        .await
        .expect("refunding twice is harmless");
    assert!(matches!(
        psp.retrieve(&id).await,
        Ok(PaymentState::Refunded {
            amount_cents: 5_000,
            ..
        })
    ));
    assert!(matches!(
        psp.lookup("k1").await,
        Ok(PaymentState::Refunded { .. })
    ));

    let voided = approve(&psp, "k2").await;
    psp.void(&voided, "k2_void").await.expect("void");
    psp.void(&voided, "k2_void_again")
        .await
        .expect("voiding twice");
    assert!(matches!(
        psp.retrieve(&voided).await,
        Ok(PaymentState::Voided { .. })
    ));
    assert!(matches!(
        psp.capture(&voided, "k2_capture").await,
        Err(PaymentError::Rejected(_))
    ));

    assert_eq!(
        psp.authorize(&request("k3", "pm_card_chargeDeclined"))
            .await,
        Ok(Authorization::Declined {
            reason: "Your card was declined.".into()
        })
    );
    assert_eq!(psp.lookup("k3").await, Ok(PaymentState::Declined));
    assert_eq!(psp.lookup("nobody").await, Ok(PaymentState::Unknown));
    assert!(matches!(
        psp.retrieve("pi_nobody").await,
        Err(PaymentError::Rejected(_))
    ));

    let ledger = get(&fake, "/__ledger").await;
    let intents = ledger["payment_intents"].as_array().expect("intents");
    assert_eq!(intents.len(), 3);
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(intents[0]["amount_captured"], 5_000);
    assert_eq!(intents[0]["amount_refunded"], 5_000);
    assert_eq!(intents[1]["status"], "canceled");
    assert_eq!(intents[2]["status"], "requires_payment_method");
    assert_eq!(ledger["refunds"].as_array().expect("refunds").len(), 1);
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[tokio::test]
async fn idempotency_keys_replay_and_refuse_other_parameters() {
    let fake = FakePsp::start().await.expect("fake");
    let http = reqwest::Client::new();
    let create = |key: &str, amount: &str| {
        http.post(format!("{}/v1/payment_intents", fake.url()))
            .bearer_auth(KEY)
            .header("Idempotency-Key", key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("amount", amount),
                ("currency", "usd"),
                ("payment_method", "pm_card_visa"),
                ("confirm", "true"),
                ("capture_method", "manual"),
            ]))
            .send()
    };
    let first = create("same", "5000").await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = create("same", "5000").await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let other = create("same", "6000").await.unwrap();
    assert_eq!(other.status(), 400);
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["error"]["type"], "idempotency_error", "{other}");
    assert_eq!(
        get(&fake, "/__ledger").await["payment_intents"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "one key, one payment"
    );
    // Declines are answers too, replayed as such.
    let declined = |key: &str| {
        http.post(format!("{}/v1/payment_intents", fake.url()))
            .bearer_auth(KEY)
            .header("Idempotency-Key", key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("amount", "5000"),
                ("currency", "usd"),
                ("payment_method", "pm_card_chargeDeclined"),
                ("confirm", "true"),
            ]))
            .send()
    };
    let d1: Value = declined("no").await.unwrap().json().await.unwrap();
    let d2 = declined("no").await.unwrap();
    assert_eq!(d2.status(), 402);
    assert_eq!(d2.json::<Value>().await.unwrap(), d1);
    assert_eq!(d1["error"]["decline_code"], "generic_decline");
    // Without the secret key, nothing.
    let anonymous = http
        .get(format!(
            "{}/v1/payment_intents/{}",
            fake.url(),
            first["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_request_in_flight_holds_its_key() {
    let fake = FakePsp::start().await.expect("fake");
    faults(&fake, json!({"latencyMs": 400, "ops": ["create"]})).await;
    let psp = adapter(&fake, Duration::from_secs(5));
    let req = request("k", "pm_card_visa");
    let (a, b) = tokio::join!(psp.authorize(&req), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        psp.authorize(&req).await
    });
    assert!(matches!(a, Ok(Authorization::Approved { .. })), "{a:?}");
    // Stripe's 409: the adapter cannot know the outcome yet.
    assert!(
        b.as_ref().is_err_and(PaymentError::outcome_unknown),
        "{b:?}"
    );
    assert_eq!(psp.authorize(&request("k", "pm_card_visa")).await, a);
}

#[tokio::test]
async fn injected_errors_do_nothing_and_counts_run_out() {
    let fake = FakePsp::start().await.expect("fake");
    let psp = adapter(&fake, Duration::from_secs(5));
    faults(
        &fake,
        json!({"status5xx": {"count": 1}, "status429": {"count": 1}}),
    )
    .await;
    let first = psp.authorize(&request("k", "pm_card_visa")).await;
    let second = psp.authorize(&request("k", "pm_card_visa")).await;
    for r in [&first, &second] {
        assert!(
            r.as_ref().is_err_and(PaymentError::outcome_unknown),
            "{r:?}"
        );
    }
    assert!(format!("{first:?}{second:?}").contains("rate limit"));
    assert_eq!(ledger_entry(&fake, "k").await, None, "refused at the door");
    approve(&psp, "k").await;
    let stats = get(&fake, "/__stats").await;
    assert_eq!(stats["create"]["received"], 3, "{stats}");
    assert_eq!(stats["create"]["faulted"], 2, "{stats}");
    assert_eq!(stats["create"]["committed"], 1, "{stats}");
}

#[tokio::test]
async fn a_down_psp_is_unreachable_and_does_nothing() {
    let fake = FakePsp::start().await.expect("fake");
    let psp = adapter(&fake, Duration::from_secs(5));
    faults(&fake, json!({"down": true})).await;
    let err = psp
        .authorize(&request("k", "pm_card_visa"))
        .await
        .unwrap_err();
    assert!(matches!(err, PaymentError::Unavailable(_)), "{err:?}");
    assert_eq!(ledger_entry(&fake, "k").await, None);
    faults(&fake, json!({})).await;
    approve(&psp, "k").await;
}

#[tokio::test]
async fn a_dropped_response_still_moved_the_money() {
    let fake = FakePsp::start().await.expect("fake");
    let psp = adapter(&fake, Duration::from_secs(5));
    faults(&fake, json!({"dropResponseAfterCommit": {"count": 1}})).await;
    let err = psp
        .authorize(&request("k", "pm_card_visa"))
        .await
        .unwrap_err();
    assert!(err.outcome_unknown(), "{err:?}");
    let pi = ledger_entry(&fake, "k").await.expect("the payment exists");
    assert_eq!(pi["status"], "requires_capture");
    // Retrying with the key replays the committed answer instead of paying twice.
    assert_eq!(approve(&psp, "k").await, pi["id"]);
    assert_eq!(
        get(&fake, "/__ledger").await["payment_intents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_slow_psp_finishes_what_the_caller_gave_up_on() {
    let fake = FakePsp::start().await.expect("fake");
    let psp = adapter(&fake, Duration::from_millis(200));
    faults(&fake, json!({"latencyMs": 600, "ops": ["create"]})).await;
    let started = Instant::now();
    assert_eq!(
        psp.authorize(&request("k", "pm_card_visa")).await,
        Err(PaymentError::Timeout)
    );
    assert!(started.elapsed() < Duration::from_millis(550));
    let deadline = Instant::now() + Duration::from_secs(5);
    while ledger_entry(&fake, "k").await.is_none() {
        assert!(Instant::now() < deadline, "the slow create never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn search_lags_but_retrieve_does_not() {
    let fake = FakePsp::start().await.expect("fake");
    let psp = adapter(&fake, Duration::from_secs(5));
    faults(&fake, json!({"searchLagMs": 300})).await;
    let id = approve(&psp, "k").await;
    assert_eq!(
        psp.lookup("k").await,
        Ok(PaymentState::Unknown),
        "not indexed yet"
    );
    assert!(matches!(
        psp.retrieve(&id).await,
        Ok(PaymentState::Authorized { .. })
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    while psp.lookup("k").await == Ok(PaymentState::Unknown) {
        assert!(Instant::now() < deadline, "the search never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        psp.lookup("k").await,
        Ok(PaymentState::Authorized { .. })
    ));
}

#[tokio::test]
async fn expired_authorizations_cannot_be_captured() {
    let fake = FakePsp::start().await.expect("fake");
    let psp = adapter(&fake, Duration::from_secs(5));
    let id = approve(&psp, "k").await;
    faults(&fake, json!({"captureFails": true})).await;
    let err = psp.capture(&id, "k_capture").await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::Rejected(m) if m.contains("expired")),
        "{err:?}"
    );
    assert!(matches!(
        psp.retrieve(&id).await,
        Ok(PaymentState::Voided { .. })
    ));
}

#[tokio::test]
async fn bad_fault_configurations_are_refused() {
    let fake = FakePsp::start().await.expect("fake");
    let res = reqwest::Client::new()
        .post(format!("{}/__faults", fake.url()))
        .json(&json!({"latencyMillis": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_faults");
}
