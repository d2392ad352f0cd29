//! Every error is a problem document with a stable code; nothing a client sends causes a 500.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, eras_tour, status_json};

#[tokio::test]
async fn framework_errors_are_problems_too() {
    let app = TestApp::start(Backend::Sqlite).await;
    let org = app.organizer();
    let cases = [
        (app.http.get(app.url("/no/such/route")), 404, "not-found"),
        (
            app.http.delete(app.url("/v1/events/x/seats")),
            405,
            "method-not-allowed",
        ),
        (
            app.http
                .post(app.url("/v1/events"))
                .bearer_auth(&org)
                .body("{not json"),
            415,
            "unsupported-media-type",
        ),
        (
            app.http
                .post(app.url("/v1/events"))
                .bearer_auth(&org)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "malformed-json",
        ),
        (
            app.http
                .post(app.url("/v1/events"))
                .bearer_auth(&org)
                .header("content-type", "application/json")
                .body(vec![b' '; 300 * 1024]),
            413,
            "payload-too-large",
        ),
        (
            app.http.post(app.url("/v1/events")).json(&eras_tour()),
            401,
            "unauthorized",
        ),
    ];
    for (req, status, code) in cases {
        let res = req.send().await.unwrap();
        let headers = res.headers().clone();
        let (got, problem) = status_json(res).await;
        assert_eq!(got, status, "{problem}");
        assert_eq!(problem["code"], code, "{problem}");
        assert_eq!(problem["type"], format!("urn:boxoffice:problem:{code}"));
        assert!(headers.contains_key("x-request-id"));
        if status == 405 {
            assert!(headers.contains_key("allow"));
        }
        if status == 401 {
            assert_eq!(headers["www-authenticate"], "Bearer");
        }
    }
}

#[tokio::test]
async fn operations_endpoints() {
    let app = TestApp::start(Backend::Sqlite).await;
    assert_eq!(app.get("/healthz").await, (200, json!({"status": "ok"})));
    // Ready once the search index has caught up with the (empty) store.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match app.get("/readyz").await {
            (200, body) => {
                assert_eq!(body["status"], "ready", "{body}");
                assert_eq!(body["search"], "current", "{body}");
                assert!(body["searchLagSeconds"].as_f64().is_some(), "{body}");
                break;
            }
            (503, problem) => assert_eq!(problem["code"], "search-not-ready"),
            other => panic!("{other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (status, _) = app.get("/v1/events/x").await;
    assert_eq!(status, 404);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"route="/v1/events/{eventId}",status="404""#),
        "{metrics}"
    );
    assert!(metrics.contains("http_request_duration_seconds_bucket"));

    let (status, spec) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/v1/events",
        "/v1/events/{eventId}",
        "/v1/events/{eventId}/seats",
        "/v1/attempt",
        "/v1/commit",
        "/v1/booking/{bookingId}",
        "/v1/postTicket",
        "/v1/events/{eventId}/listings",
        "/v1/listings",
        "/v1/listings/{listingId}",
        "/v1/payouts",
        "/v1/events/{eventId}/cancel",
        "/v1/tickets/{ticketId}/transfer",
        "/v1/transfers/{transferId}/accept",
        "/v1/transfers/{transferId}",
        "/v1/tickets/{ticketId}/qr.svg",
        "/v1/tickets/{ticketId}/qr.png",
        "/v1/events/{eventId}/revocations",
        "/healthz",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(
        html.contains("swagger-ui"),
        "the docs page is served by the binary itself"
    );
}

/// Values that break types, bounds and encodings.
fn nasty() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        Just(json!(u64::MAX)),
        Just(json!(-0.0)),
        ".{0,40}".prop_map(Value::from),
        Just(json!("\u{0}\u{202e}")),
        Just(json!([])),
        Just(json!({})),
        Just(json!("x".repeat(20_000))),
    ]
}

/// Paths into the event body that a mutation may replace.
const FIELDS: &[&[&str]] = &[
    &["name"],
    &["performers"],
    &["category"],
    &["startsAt"],
    &["onSaleAt"],
    &["currency"],
    &["venue"],
    &["venue", "lat"],
    &["venue", "lon"],
    &["venue", "zipCode"],
    &["venue", "country"],
    &["sections"],
    &["sections", "0"],
    &["sections", "0", "rows"],
    &["sections", "0", "seatsPerRow"],
    &["sections", "1", "capacity"],
    &["sections", "0", "priceCents"],
    &["policies"],
    &["policies", "maxTicketsPerCustomer"],
    &["policies", "resaleMaxPricePercent"],
];

fn set(body: &mut Value, path: &[&str], v: Value) {
    let mut cur = body;
    for (i, key) in path.iter().enumerate() {
        let next = match key.parse::<usize>() {
            Ok(n) => cur.get_mut(n),
            Err(_) => cur.get_mut(*key),
        };
        match next {
            Some(n) if i + 1 < path.len() => cur = n,
            Some(n) => {
                *n = v;
                return;
            }
            None => return,
        }
    }
}

#[test]
fn mangled_events_get_4xx_never_5xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(TestApp::start(Backend::Sqlite));
    let org = app.organizer();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(proptest::sample::select(FIELDS), nasty()),
            |(path, value)| {
                let mut body = eras_tour();
                set(&mut body, path, value.clone());
                let (status, problem) = rt.block_on(app.post("/v1/events", &org, &body));
                prop_assert!(
                    status == 201 || (400..500).contains(&status),
                    "{path:?} = {value}: {status} {problem}"
                );
                Ok(())
            },
        )
        .unwrap();
}

#[tokio::test]
async fn stripe_webhooks_are_verified() {
    use crate::common::WEBHOOK_SECRET;
    let app = TestApp::start(Backend::Sqlite).await;
    let body =
        br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}"#;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let post = |sig: String, body: &'static [u8]| {
        let req = app
            .http
            .post(app.url("/v1/webhooks/stripe"))
            .header("stripe-signature", sig)
            .header("content-type", "application/json")
            .body(body);
        async move { status_json(req.send().await.unwrap()).await }
    };
    let good = boxoffice_payments::webhook::signature_header(body, WEBHOOK_SECRET, now);
    assert_eq!(
        post(good.clone(), body).await,
        (200, json!({"received": true}))
    );
    let tampered =
        br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_2"}}}"#;
    let (status, problem) = post(good, tampered).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid-signature"))
    );
    let old = boxoffice_payments::webhook::signature_header(body, WEBHOOK_SECRET, now - 3600);
    assert_eq!(post(old, body).await.0, 400);
    let wrong = boxoffice_payments::webhook::signature_header(body, "whsec_other", now);
    assert_eq!(post(wrong, body).await.0, 400);
    assert_eq!(post(String::new(), body).await.0, 400);
}
