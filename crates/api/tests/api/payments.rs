//! Money and tickets agree (issue 7), over HTTP on every backend: free bookings never reach the
//! provider; a capture refused for good, a refund or a dispute made at the provider revokes the
//! booking; a webhook settles only the payment it names; the unsettled backlog is in
//! `/metrics`.

use std::time::Duration;

use boxoffice_api::auth::Role;
use boxoffice_api::booking::provider_key;
use boxoffice_domain::payments::PaymentState;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, WEBHOOK_SECRET, eras_tour, status_json};

crate::on_every_backend!(
    free_bookings_skip_the_provider,
    a_refused_capture_voids_the_tickets,
    refunds_and_disputes_at_the_provider_revoke_the_booking,
    webhooks_settle_only_the_payment_they_name,
    the_unsettled_backlog_is_in_metrics,
);

fn customer(app: &TestApp, name: &str) -> String {
    app.token(name, &[Role::Customer])
}

async fn hold(app: &TestApp, token: &str, event: &str, seats: &[&str]) -> String {
    let (status, b) = app
        .post(
            "/v1/attempt",
            token,
            &json!({"eventId": event, "seatIds": seats}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    b["bookingId"].as_str().unwrap().to_owned()
}

async fn commit(
    app: &TestApp,
    token: &str,
    key: &str,
    booking: &str,
    method: &str,
) -> (u16, Value) {
    let res = app
        .http
        .post(app.url("/v1/commit"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({"bookingId": booking, "paymentMethod": method}))
        .send()
        .await
        .unwrap();
    status_json(res).await
}

async fn booking(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, b) = app.get_as(&format!("/v1/booking/{id}"), token).await;
    assert_eq!(status, 200, "{b}");
    b
}

/// Polls the booking until `done` holds, for at most ten seconds.
async fn booking_until(
    app: &TestApp,
    token: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let b = booking(app, token, id).await;
        if done(&b) || std::time::Instant::now() > deadline {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn seat_status(app: &TestApp, event: &str, seat: &str) -> String {
    let (_, map) = app.get(&format!("/v1/events/{event}/seats")).await;
    map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["seatId"] == seat)
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .unwrap()
}

async fn webhook(app: &TestApp, event_type: &str, object: Value) {
    let body = serde_json::to_vec(&json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "type": event_type,
        "data": {"object": object},
    }))
    .unwrap();
    let sig = boxoffice_payments::webhook::signature_header(
        &body,
        WEBHOOK_SECRET,
        time::OffsetDateTime::now_utc().unix_timestamp(),
    );
    let res = app
        .http
        .post(app.url("/v1/webhooks/stripe"))
        .header("stripe-signature", sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// The provider's reference for the payment made with `key` by `who`.
async fn provider_ref(app: &TestApp, who: &str, key: &str) -> (String, i64) {
    match app
        .state
        .booking
        .payments
        .lookup(&provider_key(who, key))
        .await
        .unwrap()
    {
        PaymentState::Captured {
            provider_ref,
            amount_cents,
        }
        | PaymentState::Authorized {
            provider_ref,
            amount_cents,
        } => (provider_ref, amount_cents),
        other => panic!("unexpected {other:?}"),
    }
}

/// Defect 11: a free section can be "bought" without the provider, and cancelled.
async fn free_bookings_skip_the_provider(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut free = eras_tour();
    free["sections"] =
        json!([{"name": "Community", "rows": 2, "seatsPerRow": 10, "priceCents": 0}]);
    let event = app.event(&free).await;
    let alice = customer(&app, "alice");
    let id = hold(&app, &alice, &event, &["1-A-1", "1-A-2"]).await;
    let (status, paid) = commit(&app, &alice, "free-1", &id, "pm_card_visa").await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["status"], "CONFIRMED");
    assert_eq!(paid["totalCents"], 0);
    assert_eq!(paid["tickets"].as_array().unwrap().len(), 2);
    // The provider never saw it.
    assert_eq!(
        app.state
            .booking
            .payments
            .lookup(&provider_key("alice", "free-1"))
            .await
            .unwrap(),
        PaymentState::Unknown
    );
    // Nothing is left to settle, and cancelling gives back nothing through nobody.
    let res = app
        .http
        .delete(app.url(&format!("/v1/booking/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let (status, cancelled) = status_json(res).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED");
    let backlog = app.store.payment_backlog().await.unwrap();
    assert_eq!(backlog.unsettled, 0);
    assert!(
        app.store
            .verify(boxoffice_domain::ports::Clock::now(&*app.clock))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Defect 2: the authorization lapses before the capture: tickets void, seats back on sale,
/// the booking says why.
async fn a_refused_capture_voids_the_tickets(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let id = hold(&app, &alice, &event, &["1-A-1"]).await;
    let (status, paid) = commit(&app, &alice, "k", &id, "pm_card_captureRefused").await;
    assert_eq!(status, 200, "{paid}");
    let b = booking_until(&app, &alice, &id, |b| b["status"] == "CANCELLED").await;
    assert_eq!(b["status"], "CANCELLED", "{b}");
    assert_eq!(b["statusReason"], "payment-capture-failed");
    assert_eq!(b["tickets"][0]["status"], "VOID");
    assert_eq!(seat_status(&app, &event, "1-A-1").await, "OPEN");
    assert!(matches!(
        app.state
            .booking
            .payments
            .lookup(&provider_key("alice", "k"))
            .await
            .unwrap(),
        PaymentState::Voided { .. }
    ));
    assert!(
        app.store
            .verify(boxoffice_domain::ports::Clock::now(&*app.clock))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Defect 2: a refund made at the provider (dashboard) or a dispute voids the tickets.
async fn refunds_and_disputes_at_the_provider_revoke_the_booking(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let refunded = hold(&app, &alice, &event, &["1-A-1"]).await;
    assert_eq!(
        commit(&app, &alice, "k1", &refunded, "pm_card_visa")
            .await
            .0,
        200
    );
    let disputed = hold(&app, &alice, &event, &["1-A-2"]).await;
    assert_eq!(
        commit(&app, &alice, "k2", &disputed, "pm_card_visa")
            .await
            .0,
        200
    );

    // A webhook claiming a refund that the provider does not confirm changes nothing.
    let (r1, amount) = provider_ref(&app, "alice", "k1").await;
    let charge = json!({"id": "ch_1", "object": "charge", "payment_intent": r1,
                        "amount": amount, "amount_refunded": amount, "refunded": true});
    webhook(&app, "charge.refunded", charge.clone()).await;
    // Then someone refunds it in the provider's dashboard, and the webhook comes.
    app.state
        .booking
        .payments
        .refund(&r1, amount, "dashboard-refund")
        .await
        .unwrap();
    webhook(&app, "charge.refunded", charge).await;
    let b = booking_until(&app, &alice, &refunded, |b| b["status"] == "CANCELLED").await;
    assert_eq!(b["statusReason"], "payment-refunded", "{b}");
    assert_eq!(b["tickets"][0]["status"], "VOID");

    let (r2, amount) = provider_ref(&app, "alice", "k2").await;
    webhook(
        &app,
        "charge.dispute.created",
        json!({"id": "dp_1", "object": "dispute", "payment_intent": r2, "amount": amount,
               "reason": "fraudulent"}),
    )
    .await;
    let b = booking_until(&app, &alice, &disputed, |b| b["status"] == "CANCELLED").await;
    assert_eq!(b["statusReason"], "payment-disputed", "{b}");
    assert_eq!(b["tickets"][0]["status"], "VOID");
    assert_eq!(seat_status(&app, &event, "1-A-2").await, "OPEN");
    assert!(
        app.store
            .verify(boxoffice_domain::ports::Clock::now(&*app.clock))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Defect 8: a webhook settles the payment it names, not every unsettled payment.
async fn webhooks_settle_only_the_payment_they_name(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let bob = customer(&app, "bob");
    // Two payments whose answers were lost: both bookings wait, PENDING.
    let a = hold(&app, &alice, &event, &["1-B-1"]).await;
    let b = hold(&app, &bob, &event, &["1-B-2"]).await;
    assert_eq!(
        commit(&app, &alice, "ka", &a, "pm_card_lostResponse")
            .await
            .0,
        202
    );
    assert_eq!(
        commit(&app, &bob, "kb", &b, "pm_card_lostResponse").await.0,
        202
    );
    // The provider tells us about alice's (we never learnt its reference: the event carries
    // our key in its metadata).
    let (ra, amount) = provider_ref(&app, "alice", "ka").await;
    webhook(
        &app,
        "payment_intent.amount_capturable_updated",
        json!({"id": ra, "object": "payment_intent", "amount": amount,
               "amount_capturable": amount,
               "metadata": {"idempotency_key": provider_key("alice", "ka")}}),
    )
    .await;
    let done = booking_until(&app, &alice, &a, |b| b["status"] == "CONFIRMED").await;
    assert_eq!(done["status"], "CONFIRMED", "{done}");
    // Bob's is left for the reconciler.
    assert_eq!(booking(&app, &bob, &b).await["status"], "PENDING");
}

/// Defect 3: the unsettled backlog and its oldest age are in /metrics.
async fn the_unsettled_backlog_is_in_metrics(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let a = hold(&app, &alice, &event, &["1-C-1"]).await;
    assert_eq!(
        commit(&app, &alice, "k", &a, "pm_card_lostResponse")
            .await
            .0,
        202
    );
    app.state.booking.reconcile().await.unwrap();
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("payments_unsettled"), "{metrics}");
    assert!(metrics.contains("payments_unsettled_oldest_age_seconds"));
}
