//! The Stripe adapter against a local fake of Stripe's API (wiremock): what it sends, and how
//! it reads each kind of answer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use boxoffice_domain::payments::{
    Authorization, PaymentError, PaymentProvider, PaymentRequest, PaymentState,
};
use boxoffice_payments::{Stripe, StripeConfig, StripeConfigError};
use serde_json::{Value, json};
use wiremock::matchers::{bearer_token, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Long and distinctive, so that any leak of it is found by a substring search.
const API_KEY: &str = "sk_test_51SecretKeyThatMustNeverLeak0123456789";

fn config(server: &MockServer) -> StripeConfig {
    StripeConfig::new(API_KEY)
        .with_base_url(server.uri())
        .with_request_timeout(Duration::from_secs(10))
}

fn stripe(server: &MockServer) -> Stripe {
    Stripe::new(config(server)).expect("stripe client")
}

fn request(key: &str) -> PaymentRequest {
    PaymentRequest {
        idempotency_key: key.to_owned(),
        amount_cents: 12_500,
        currency: "USD".parse().unwrap(),
        method: "pm_card_visa".to_owned(),
        description: "2 × Floor, Taylor Swift | The Eras Tour".to_owned(),
        booking_ref: "bk_0192".to_owned(),
    }
}

fn intent(id: &str, status: &str) -> Value {
    json!({
        "id": id,
        "object": "payment_intent",
        "status": status,
        "amount": 12_500,
        "amount_capturable": if status == "requires_capture" { 12_500 } else { 0 },
        "amount_received": if status == "succeeded" { 12_500 } else { 0 },
        "currency": "usd",
        "capture_method": "manual",
        "created": 1_700_000_000,
        "latest_charge": "ch_1",
        "metadata": {"booking_ref": "bk_0192", "idempotency_key": "k"}
    })
}

fn stripe_error(status: u16, kind: &str, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"type": kind, "code": code, "message": message}
    }))
}

fn unexpected_state(current: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({
        "error": {
            "type": "invalid_request_error",
            "code": "payment_intent_unexpected_state",
            "message": format!("This PaymentIntent's status is {current}."),
            "payment_intent": {"id": "pi_1", "object": "payment_intent", "status": current}
        }
    }))
}

fn form(req: &Request) -> HashMap<String, String> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let map: HashMap<_, _> = pairs.iter().cloned().collect();
    assert_eq!(
        map.len(),
        pairs.len(),
        "a form field was sent twice: {pairs:?}"
    );
    map
}

fn assert_no_key(what: &str, text: &str) {
    assert!(!text.contains(API_KEY), "{what} shows the API key: {text}");
    assert!(
        !text.contains("SecretKeyThatMustNeverLeak"),
        "{what} shows part of the API key: {text}"
    );
}

async fn authorize_answer(answer: ResponseTemplate) -> Result<Authorization, PaymentError> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    stripe(&server).authorize(&request("k")).await
}

#[tokio::test]
async fn authorize_creates_a_manual_capture_intent_and_approves() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .and(bearer_token(API_KEY))
        .and(header("idempotency-key", "attempt-7"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(intent("pi_3Mtw", "requires_capture")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let psp = stripe(&server);
    assert_eq!(psp.name(), "stripe");
    assert_eq!(
        psp.authorize(&request("attempt-7")).await.unwrap(),
        Authorization::Approved {
            provider_ref: "pi_3Mtw".into()
        }
    );

    let received = server.received_requests().await.unwrap();
    let sent = form(&received[0]);
    for (field, value) in [
        ("amount", "12500"),
        ("currency", "usd"),
        ("payment_method", "pm_card_visa"),
        ("confirm", "true"),
        ("capture_method", "manual"),
        ("description", "2 × Floor, Taylor Swift | The Eras Tour"),
        ("metadata[booking_ref]", "bk_0192"),
        ("metadata[idempotency_key]", "attempt-7"),
    ] {
        assert_eq!(sent.get(field).map(String::as_str), Some(value), "{field}");
    }
}

#[tokio::test]
async fn a_card_error_is_a_decline_with_stripes_message() {
    let answer = stripe_error(
        402,
        "card_error",
        "card_declined",
        "Your card has insufficient funds.",
    );
    assert_eq!(
        authorize_answer(answer).await.unwrap(),
        Authorization::Declined {
            reason: "Your card has insufficient funds.".into()
        }
    );
}

#[tokio::test]
async fn intents_that_did_not_authorize_are_declines() {
    for status in ["requires_action", "requires_payment_method", "canceled"] {
        let answer = ResponseTemplate::new(200).set_body_json(intent("pi_1", status));
        match authorize_answer(answer).await {
            Ok(Authorization::Declined { reason }) => assert!(!reason.is_empty()),
            other => panic!("{status}: expected a decline, got {other:?}"),
        }
    }
    let mut refused = intent("pi_1", "requires_payment_method");
    refused["last_payment_error"] = json!({"type": "card_error", "message": "Do not honor."});
    assert_eq!(
        authorize_answer(ResponseTemplate::new(200).set_body_json(refused))
            .await
            .unwrap(),
        Authorization::Declined {
            reason: "Do not honor.".into()
        }
    );
}

#[tokio::test]
async fn server_errors_and_contention_leave_the_outcome_unknown() {
    for answer in [
        stripe_error(500, "api_error", "", "Something went wrong."),
        ResponseTemplate::new(503).set_body_string("<html>bad gateway</html>"),
        // Another request with the same idempotency key is in flight.
        stripe_error(
            409,
            "idempotency_error",
            "",
            "There is currently another in-progress request using this idempotency key.",
        ),
        stripe_error(
            429,
            "invalid_request_error",
            "rate_limit",
            "Too many requests.",
        ),
        // A 200 we cannot read: the payment may exist.
        ResponseTemplate::new(200).set_body_string("{not json"),
    ] {
        let result = authorize_answer(answer).await;
        match result {
            Err(e @ PaymentError::Unavailable(_)) => assert!(e.outcome_unknown()),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_stripe_is_unavailable() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let psp =
        Stripe::new(StripeConfig::new(API_KEY).with_base_url(format!("http://127.0.0.1:{port}")))
            .unwrap();
    let err = psp.authorize(&request("k")).await.unwrap_err();
    assert!(matches!(err, PaymentError::Unavailable(_)), "{err:?}");
    assert_no_key("connection error", &format!("{err} {err:?}"));
    let err = psp.lookup("k").await.unwrap_err();
    assert!(matches!(err, PaymentError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(intent("pi_1", "requires_capture"))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let psp =
        Stripe::new(config(&server).with_request_timeout(Duration::from_millis(300))).unwrap();
    let started = Instant::now();
    assert_eq!(
        psp.authorize(&request("k")).await,
        Err(PaymentError::Timeout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the request timeout was not applied"
    );
}

#[tokio::test]
async fn other_client_errors_are_rejections_with_stripes_message() {
    let answer = stripe_error(
        400,
        "invalid_request_error",
        "parameter_invalid_integer",
        "Invalid integer: abc",
    );
    assert_eq!(
        authorize_answer(answer).await,
        Err(PaymentError::Rejected("Invalid integer: abc".into()))
    );
    let answer = stripe_error(
        400,
        "idempotency_error",
        "",
        "Keys for idempotent requests can only be used with the same parameters they were first used with.",
    );
    assert!(matches!(
        authorize_answer(answer).await,
        Err(PaymentError::Rejected(_))
    ));
    // A 402 that is not a card error is not the customer's card being refused.
    let answer = stripe_error(402, "invalid_request_error", "", "Payment required.");
    assert!(matches!(
        authorize_answer(answer).await,
        Err(PaymentError::Rejected(_))
    ));
}

#[tokio::test]
async fn the_api_key_never_appears_in_errors_or_debug() {
    // Stripe masks keys in its messages, but suppose a proxy or a fake echoes it in full.
    let echo = format!("Invalid API Key provided: {API_KEY}");
    for answer in [
        stripe_error(401, "invalid_request_error", "", &echo),
        stripe_error(500, "api_error", "", &echo),
        stripe_error(402, "card_error", "card_declined", &echo),
    ] {
        let outcome = authorize_answer(answer).await;
        assert_no_key("an answer from Stripe", &format!("{outcome:?}"));
        if let Err(e) = &outcome {
            assert_no_key("an error", &e.to_string());
        }
    }

    let server = MockServer::start().await;
    let psp = stripe(&server);
    assert_no_key("Debug of Stripe", &format!("{psp:?} {psp:#?}"));
    let cfg = config(&server);
    assert_no_key("Debug of StripeConfig", &format!("{cfg:?} {cfg:#?}"));

    let bad = Stripe::new(StripeConfig::new(format!("{API_KEY}\n")).with_base_url(server.uri()));
    let err = bad.unwrap_err();
    assert!(matches!(err, StripeConfigError::InvalidApiKey));
    assert_no_key("a config error", &format!("{err} {err:?}"));
    assert!(matches!(
        Stripe::new(StripeConfig::new("")),
        Err(StripeConfigError::EmptyApiKey)
    ));
    assert!(matches!(
        Stripe::new(StripeConfig::new(API_KEY).with_base_url("ftp://stripe")),
        Err(StripeConfigError::InvalidBaseUrl(_))
    ));
    let with_credentials = Stripe::new(
        StripeConfig::new(API_KEY).with_base_url("https://user:hunter2@api.stripe.com"),
    );
    match with_credentials {
        Err(e @ StripeConfigError::InvalidBaseUrl(_)) => {
            assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}")
        }
        other => panic!("expected InvalidBaseUrl, got {other:?}"),
    }
}

#[tokio::test]
async fn capture_posts_to_the_intent_and_treats_already_captured_as_done() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_ok/capture"))
        .and(bearer_token(API_KEY))
        .and(header("idempotency-key", "cap-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_ok", "succeeded")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_done/capture"))
        .respond_with(unexpected_state("succeeded"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_gone/capture"))
        .respond_with(unexpected_state("canceled"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_down/capture"))
        .respond_with(stripe_error(502, "api_error", "", "Bad gateway."))
        .mount(&server)
        .await;
    let psp = stripe(&server);
    assert_eq!(psp.capture("pi_ok", "cap-1").await, Ok(()));
    assert_eq!(psp.capture("pi_done", "cap-2").await, Ok(()));
    assert!(matches!(
        psp.capture("pi_gone", "cap-3").await,
        Err(PaymentError::Rejected(_))
    ));
    assert!(matches!(
        psp.capture("pi_down", "cap-4").await,
        Err(PaymentError::Unavailable(_))
    ));
}

#[tokio::test]
async fn void_cancels_the_intent_and_treats_already_canceled_as_done() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_ok/cancel"))
        .and(header("idempotency-key", "void-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_ok", "canceled")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_done/cancel"))
        .respond_with(unexpected_state("canceled"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_taken/cancel"))
        .respond_with(unexpected_state("succeeded"))
        .mount(&server)
        .await;
    let psp = stripe(&server);
    assert_eq!(psp.void("pi_ok", "void-1").await, Ok(()));
    assert_eq!(psp.void("pi_done", "void-2").await, Ok(()));
    match psp.void("pi_taken", "void-3").await {
        Err(PaymentError::Rejected(msg)) => assert!(msg.contains("refund"), "{msg}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn refund_posts_the_intent_and_amount_and_treats_already_refunded_as_done() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .and(header("idempotency-key", "refund-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "re_1", "object": "refund", "status": "succeeded", "amount": 12_500
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .and(header("idempotency-key", "refund-2"))
        .respond_with(stripe_error(
            400,
            "invalid_request_error",
            "charge_already_refunded",
            "Charge ch_1 has already been refunded.",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .and(header("idempotency-key", "refund-3"))
        .respond_with(stripe_error(
            400,
            "invalid_request_error",
            "amount_too_large",
            "Refund amount ($200.00) is greater than charge amount ($125.00)",
        ))
        .mount(&server)
        .await;
    let psp = stripe(&server);
    assert_eq!(psp.refund("pi_1", 12_500, "refund-1").await, Ok(()));
    let received = server.received_requests().await.unwrap();
    let sent = form(&received[0]);
    assert_eq!(sent.get("payment_intent").map(String::as_str), Some("pi_1"));
    assert_eq!(sent.get("amount").map(String::as_str), Some("12500"));
    assert_eq!(sent.len(), 2, "{sent:?}");

    assert_eq!(psp.refund("pi_1", 12_500, "refund-2").await, Ok(()));
    assert_eq!(
        psp.refund("pi_1", 20_000, "refund-3").await,
        Err(PaymentError::Rejected(
            "Refund amount ($200.00) is greater than charge amount ($125.00)".into()
        ))
    );
}

#[tokio::test]
async fn refs_that_are_not_stripe_ids_are_refused_without_a_request() {
    let server = MockServer::start().await;
    let psp = stripe(&server);
    for bad in ["", "pi_1/../../v1/refunds", "pi_1?expand=x"] {
        assert!(matches!(
            psp.capture(bad, "k").await,
            Err(PaymentError::Rejected(_))
        ));
        assert!(matches!(
            psp.void(bad, "k").await,
            Err(PaymentError::Rejected(_))
        ));
        assert!(matches!(
            psp.refund(bad, 1, "k").await,
            Err(PaymentError::Rejected(_))
        ));
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// Mounts a search answer for one idempotency key.
async fn search_answer(server: &MockServer, key: &str, found: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/search"))
        .and(bearer_token(API_KEY))
        .and(query_param(
            "query",
            format!("metadata['idempotency_key']:'{key}'"),
        ))
        .and(query_param("expand[]", "data.latest_charge"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": false,
            "data": found,
        })))
        .expect(1)
        .mount(server)
        .await;
}

fn with_charge(mut pi: Value, refunded: bool, amount_refunded: i64) -> Value {
    pi["latest_charge"] = json!({
        "id": "ch_1", "object": "charge", "refunded": refunded, "amount_refunded": amount_refunded
    });
    pi
}

#[tokio::test]
async fn lookup_searches_by_idempotency_key_and_maps_every_state() {
    let server = MockServer::start().await;
    search_answer(&server, "k-none", vec![]).await;
    search_answer(&server, "k-auth", vec![intent("pi_a", "requires_capture")]).await;
    search_answer(
        &server,
        "k-captured",
        vec![with_charge(intent("pi_c", "succeeded"), false, 0)],
    )
    .await;
    search_answer(
        &server,
        "k-partly",
        vec![with_charge(intent("pi_p", "succeeded"), false, 500)],
    )
    .await;
    search_answer(
        &server,
        "k-refunded",
        vec![with_charge(intent("pi_r", "succeeded"), true, 12_500)],
    )
    .await;
    search_answer(&server, "k-voided", vec![intent("pi_v", "canceled")]).await;
    search_answer(
        &server,
        "k-declined",
        vec![intent("pi_d", "requires_payment_method")],
    )
    .await;
    // Should a key ever match several intents, the one that moved money is the answer.
    search_answer(
        &server,
        "k-several",
        vec![
            intent("pi_old", "requires_payment_method"),
            intent("pi_good", "requires_capture"),
        ],
    )
    .await;
    search_answer(&server, "k-processing", vec![intent("pi_x", "processing")]).await;

    let psp = stripe(&server);
    let amount_cents = 12_500;
    for (key, expected) in [
        ("k-none", PaymentState::Unknown),
        (
            "k-auth",
            PaymentState::Authorized {
                provider_ref: "pi_a".into(),
                amount_cents,
            },
        ),
        (
            "k-captured",
            PaymentState::Captured {
                provider_ref: "pi_c".into(),
                amount_cents,
            },
        ),
        (
            "k-partly",
            PaymentState::Captured {
                provider_ref: "pi_p".into(),
                amount_cents,
            },
        ),
        (
            "k-refunded",
            PaymentState::Refunded {
                provider_ref: "pi_r".into(),
                amount_cents,
            },
        ),
        (
            "k-voided",
            PaymentState::Voided {
                provider_ref: "pi_v".into(),
            },
        ),
        ("k-declined", PaymentState::Declined),
        (
            "k-several",
            PaymentState::Authorized {
                provider_ref: "pi_good".into(),
                amount_cents,
            },
        ),
    ] {
        assert_eq!(psp.lookup(key).await.unwrap(), expected, "{key}");
    }
    let processing = psp.lookup("k-processing").await.unwrap_err();
    assert!(processing.outcome_unknown(), "{processing:?}");
}

#[tokio::test]
async fn lookup_escapes_quotes_in_the_key() {
    let server = MockServer::start().await;
    search_answer(&server, r"it\'s", vec![]).await;
    assert_eq!(
        stripe(&server).lookup("it's").await.unwrap(),
        PaymentState::Unknown
    );
}

#[tokio::test]
async fn lookup_failures_are_reported_not_guessed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/search"))
        .respond_with(stripe_error(500, "api_error", "", "Search is down."))
        .mount(&server)
        .await;
    let err = stripe(&server).lookup("k").await.unwrap_err();
    assert!(matches!(err, PaymentError::Unavailable(_)), "{err:?}");
}

/// Mounts the answer to `GET /v1/payment_intents/{id}` with the latest charge expanded.
async fn retrieve_answer(server: &MockServer, id: &str, answer: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/v1/payment_intents/{id}")))
        .and(bearer_token(API_KEY))
        .and(query_param("expand[]", "latest_charge"))
        .respond_with(answer)
        .expect(1)
        .mount(server)
        .await;
}

fn charge(amount_captured: i64, amount_refunded: i64, refunded: bool) -> Value {
    json!({
        "id": "ch_1", "object": "charge", "amount": 12_500, "captured": amount_captured > 0,
        "amount_captured": amount_captured, "amount_refunded": amount_refunded,
        "refunded": refunded, "payment_intent": "pi_1", "status": "succeeded"
    })
}

fn retrieved(id: &str, status: &str, charge: Option<Value>) -> ResponseTemplate {
    let mut pi = intent(id, status);
    pi["latest_charge"] = charge.unwrap_or(Value::Null);
    ResponseTemplate::new(200).set_body_json(pi)
}

#[tokio::test]
async fn retrieve_reads_the_intent_by_id_and_maps_every_state() {
    let server = MockServer::start().await;
    let authorized = charge(0, 0, false);
    retrieve_answer(
        &server,
        "pi_auth",
        retrieved("pi_auth", "requires_capture", Some(authorized)),
    )
    .await;
    retrieve_answer(
        &server,
        "pi_capt",
        retrieved("pi_capt", "succeeded", Some(charge(12_500, 0, false))),
    )
    .await;
    // A partial refund leaves money taken: still captured, never "refunded".
    retrieve_answer(
        &server,
        "pi_part",
        retrieved("pi_part", "succeeded", Some(charge(12_500, 500, false))),
    )
    .await;
    retrieve_answer(
        &server,
        "pi_refd",
        retrieved("pi_refd", "succeeded", Some(charge(12_500, 12_500, true))),
    )
    .await;
    // Full by the amounts even where the flag is missing.
    let mut no_flag = charge(12_500, 12_500, false);
    no_flag.as_object_mut().unwrap().remove("refunded");
    retrieve_answer(
        &server,
        "pi_refd2",
        retrieved("pi_refd2", "succeeded", Some(no_flag)),
    )
    .await;
    retrieve_answer(&server, "pi_void", retrieved("pi_void", "canceled", None)).await;
    let mut declined = intent("pi_decl", "requires_payment_method");
    declined["latest_charge"] = json!({"id": "ch_2", "object": "charge", "status": "failed",
        "amount_captured": 0, "amount_refunded": 0, "refunded": false});
    declined["last_payment_error"] = json!({"type": "card_error", "code": "card_declined", "message": "Your card was declined."});
    retrieve_answer(
        &server,
        "pi_decl",
        ResponseTemplate::new(200).set_body_json(declined),
    )
    .await;
    retrieve_answer(&server, "pi_proc", retrieved("pi_proc", "processing", None)).await;

    let psp = stripe(&server);
    let amount_cents = 12_500;
    for (id, expected) in [
        (
            "pi_auth",
            PaymentState::Authorized {
                provider_ref: "pi_auth".into(),
                amount_cents,
            },
        ),
        (
            "pi_capt",
            PaymentState::Captured {
                provider_ref: "pi_capt".into(),
                amount_cents,
            },
        ),
        (
            "pi_part",
            PaymentState::Captured {
                provider_ref: "pi_part".into(),
                amount_cents,
            },
        ),
        (
            "pi_refd",
            PaymentState::Refunded {
                provider_ref: "pi_refd".into(),
                amount_cents,
            },
        ),
        (
            "pi_refd2",
            PaymentState::Refunded {
                provider_ref: "pi_refd2".into(),
                amount_cents,
            },
        ),
        (
            "pi_void",
            PaymentState::Voided {
                provider_ref: "pi_void".into(),
            },
        ),
        ("pi_decl", PaymentState::Declined),
        // Between states: ask again later.
        ("pi_proc", PaymentState::Unknown),
    ] {
        assert_eq!(psp.retrieve(id).await.unwrap(), expected, "{id}");
    }
}

#[tokio::test]
async fn retrieve_never_guesses() {
    let server = MockServer::start().await;
    // Without the charge a refunded payment would look captured.
    retrieve_answer(&server, "pi_bare", retrieved("pi_bare", "succeeded", None)).await;
    retrieve_answer(
        &server,
        "pi_gone",
        stripe_error(
            404,
            "invalid_request_error",
            "resource_missing",
            "No such payment_intent: 'pi_gone'",
        ),
    )
    .await;
    retrieve_answer(
        &server,
        "pi_down",
        stripe_error(503, "api_error", "", "Try again."),
    )
    .await;
    retrieve_answer(
        &server,
        "pi_busy",
        stripe_error(
            429,
            "invalid_request_error",
            "rate_limit",
            "Too many requests.",
        ),
    )
    .await;
    let psp = stripe(&server);
    let bare = psp.retrieve("pi_bare").await.unwrap_err();
    assert!(bare.outcome_unknown(), "{bare:?}");
    assert!(matches!(
        psp.retrieve("pi_gone").await,
        Err(PaymentError::Rejected(m)) if m.contains("No such payment_intent")
    ));
    assert!(psp.retrieve("pi_down").await.unwrap_err().outcome_unknown());
    assert!(psp.retrieve("pi_busy").await.unwrap_err().outcome_unknown());
    // Nothing that could escape the path is sent at all.
    assert!(matches!(
        psp.retrieve("pi_1/../refunds").await,
        Err(PaymentError::Rejected(_))
    ));
}

#[tokio::test]
async fn lookup_lag_is_the_configured_search_lag() {
    let server = MockServer::start().await;
    assert_eq!(stripe(&server).lookup_lag(), Duration::from_secs(60));
    let psp = Stripe::new(config(&server).with_search_lag(Duration::from_secs(5))).unwrap();
    assert_eq!(psp.lookup_lag(), Duration::from_secs(5));
}

#[tokio::test]
async fn payouts_are_transfers_to_a_configured_connected_account() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/transfers"))
        .and(header("idempotency-key", "payout_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "tr_1", "object": "transfer", "amount": 27_000, "destination": "acct_alice"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let config = StripeConfig::new("sk_test_123")
        .with_base_url(server.uri())
        .with_connected_accounts(HashMap::from([("alice".into(), "acct_alice".into())]));
    let psp = Stripe::new(config).expect("stripe");
    let usd = "USD".parse().unwrap();
    assert_eq!(
        psp.payout("alice", 27_000, usd, "payout_1").await,
        Ok(Some("tr_1".into()))
    );
    let received = server.received_requests().await.unwrap();
    let sent = form(&received[0]);
    assert_eq!(
        sent.get("destination").map(String::as_str),
        Some("acct_alice")
    );
    assert_eq!(sent.get("amount").map(String::as_str), Some("27000"));
    assert_eq!(sent.get("currency").map(String::as_str), Some("usd"));
    // A seller without a connected account is left SCHEDULED: nothing is sent.
    assert_eq!(psp.payout("bob", 1_000, usd, "payout_2").await, Ok(None));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
