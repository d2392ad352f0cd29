//! The booking flow over HTTP: hold, pay once, tickets, cancel, check in — on every backend,
//! with the built-in sandbox payment provider.

use boxoffice_api::auth::Role;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, eras_tour, status_json};

crate::on_every_backend!(
    hold_pay_and_get_tickets,
    commit_is_idempotent,
    declined_payment_keeps_the_hold,
    holds_expire_and_cannot_be_paid,
    attempt_rejects_bad_requests_and_taken_seats,
    delete_releases_holds_and_refunds_within_the_window,
    bookings_are_private,
    check_in_at_the_door,
    unknown_payment_outcomes_are_reconciled,
);

fn customer(app: &TestApp, name: &str) -> String {
    app.token(name, &[Role::Customer])
}

async fn attempt(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.post("/v1/attempt", token, &body).await
}

async fn commit(app: &TestApp, token: &str, key: &str, body: &Value) -> (u16, Value, bool) {
    let res = app
        .http
        .post(app.url("/v1/commit"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = res.headers().contains_key("idempotent-replayed");
    let (status, json) = status_json(res).await;
    (status, json, replayed)
}

async fn hold(app: &TestApp, token: &str, event: &str, seats: &[&str]) -> String {
    let (status, b) = attempt(app, token, json!({"eventId": event, "seatIds": seats})).await;
    assert_eq!(status, 201, "{b}");
    b["bookingId"].as_str().unwrap().to_owned()
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

async fn verify_clean(app: &TestApp) {
    let findings = app
        .store
        .verify(time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
}

async fn hold_pay_and_get_tickets(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let (status, held) = attempt(
        &app,
        &alice,
        json!({"eventId": event, "seatIds": ["1-A-1", "1-A-2"]}),
    )
    .await;
    assert_eq!(status, 201, "{held}");
    assert_eq!(held["status"], "HOLD");
    assert_eq!(held["totalCents"], 50_000);
    assert_eq!(held["seats"][0]["section"], "Floor");
    assert!(held["expiresAt"].is_string());
    assert_eq!(held["tickets"], json!([]));
    let booking = held["bookingId"].as_str().unwrap();
    assert_eq!(seat_status(&app, &event, "1-A-1").await, "HOLD");

    let body = json!({"bookingId": booking, "paymentMethod": "pm_card_visa"});
    let (status, paid, _) = commit(&app, &alice, "k-1", &body).await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["status"], "CONFIRMED");
    let tickets = paid["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    assert_eq!(seat_status(&app, &event, "1-A-2").await, "SOLD");

    // The token is an EdDSA JWT that the published key verifies.
    let (status, jwks) = app.get("/.well-known/ticket-keys.json").await;
    assert_eq!(status, 200);
    let jwks: JwkSet = serde_json::from_value(jwks).unwrap();
    let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut v = Validation::new(Algorithm::EdDSA);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(tickets[0]["token"].as_str().unwrap(), &key, &v)
        .unwrap()
        .claims;
    assert_eq!(claims["tid"], tickets[0]["ticketId"]);
    assert_eq!(claims["eid"], event.as_str());

    let (status, mine) = app.get_as("/v1/tickets", &alice).await;
    assert_eq!(status, 200);
    assert_eq!(mine["tickets"].as_array().unwrap().len(), 2);
    let (status, read) = app.get_as(&format!("/v1/booking/{booking}"), &alice).await;
    assert_eq!(status, 200);
    assert_eq!(read["status"], "CONFIRMED");
    assert_eq!(read["tickets"], paid["tickets"]);

    // Best available and general admission through the same flow.
    let (status, ga) = attempt(
        &app,
        &alice,
        json!({"eventId": event, "section": "lawn", "quantity": 3}),
    )
    .await;
    assert_eq!(status, 201, "{ga}");
    assert_eq!(ga["seats"].as_array().unwrap().len(), 3);
    let body = json!({"bookingId": ga["bookingId"], "paymentMethod": "pm_card_mastercard"});
    let res = app
        .http
        .post(app.url("/v1/commit"))
        .bearer_auth(&alice)
        .header("idempotentKey", "seed-style-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "the seed's idempotentKey header is accepted"
    );
    verify_clean(&app).await;
}

async fn commit_is_idempotent(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let booking = hold(&app, &alice, &event, &["1-B-1"]).await;
    let body = json!({"bookingId": booking, "paymentMethod": "pm_card_visa"});

    let (status, problem, _) = commit(&app, &alice, "", &body).await;
    assert_eq!(status, 400, "{problem}");
    let res = app
        .http
        .post(app.url("/v1/commit"))
        .bearer_auth(&alice)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, problem) = status_json(res).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("idempotency-key-required"))
    );

    let send = || async {
        app.http
            .post(app.url("/v1/commit"))
            .bearer_auth(&alice)
            .header("Idempotency-Key", "same")
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    let first = send().await;
    assert_eq!(first.status(), 200);
    let first_bytes = first.bytes().await.unwrap();
    let again = send().await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.bytes().await.unwrap(),
        first_bytes,
        "replayed byte for byte"
    );

    let other = json!({"bookingId": booking, "paymentMethod": "pm_card_mastercard"});
    let (status, problem, _) = commit(&app, &alice, "same", &other).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("idempotency-key-reused"))
    );
    let (status, problem, _) = commit(&app, &alice, "another", &body).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("already-confirmed"))
    );
    // Keys are scoped to the customer: bob's "same" is his own, and alice's booking is not his.
    let bob = customer(&app, "bob");
    let (status, _, _) = commit(&app, &bob, "same", &body).await;
    assert_eq!(status, 404);

    // Many parallel commits with one key: one charge.
    let booking = hold(&app, &alice, &event, &["1-B-2"]).await;
    let body = json!({"bookingId": booking, "paymentMethod": "pm_card_visa"});
    let results =
        futures_util::future::join_all((0..10).map(|_| commit(&app, &alice, "par", &body))).await;
    let ok = results.iter().filter(|r| r.0 == 200).count();
    assert!(ok >= 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.0 == 200 || (r.0 == 409 && r.1["code"] == "request-in-progress")),
        "{results:?}"
    );
    let confirmed: Vec<_> = results
        .iter()
        .filter(|r| r.0 == 200)
        .map(|r| &r.1)
        .collect();
    assert!(
        confirmed.windows(2).all(|w| w[0] == w[1]),
        "every 200 is the same outcome"
    );
    verify_clean(&app).await;
}

async fn declined_payment_keeps_the_hold(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let booking = hold(&app, &alice, &event, &["1-C-1"]).await;
    let declined = json!({"bookingId": booking, "paymentMethod": "pm_card_chargeDeclined"});
    let (status, problem, _) = commit(&app, &alice, "d1", &declined).await;
    assert_eq!(status, 402, "{problem}");
    assert_eq!(problem["code"], "payment-declined");
    assert_eq!(problem["bookingStatus"], "HOLD");
    let (status, again, replayed) = commit(&app, &alice, "d1", &declined).await;
    assert_eq!((status, replayed), (402, true));
    assert_eq!(again, problem);
    assert_eq!(seat_status(&app, &event, "1-C-1").await, "HOLD");
    let ok = json!({"bookingId": booking, "paymentMethod": "pm_card_visa"});
    let (status, paid, _) = commit(&app, &alice, "d2", &ok).await;
    assert_eq!(status, 200, "{paid}");
    verify_clean(&app).await;
}

async fn holds_expire_and_cannot_be_paid(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let bob = customer(&app, "bob");
    let booking = hold(&app, &alice, &event, &["1-D-1"]).await;
    app.clock.advance(time::Duration::minutes(6));
    // Expired but not yet swept: bob can take the seat, alice cannot pay.
    assert_eq!(seat_status(&app, &event, "1-D-1").await, "OPEN");
    let (status, read) = app.get_as(&format!("/v1/booking/{booking}"), &alice).await;
    assert_eq!((status, read["status"].as_str()), (200, Some("EXPIRED")));
    let body = json!({"bookingId": booking, "paymentMethod": "pm_card_visa"});
    let (status, problem, _) = commit(&app, &alice, "late", &body).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (410, Some("hold-expired"))
    );
    hold(&app, &bob, &event, &["1-D-1"]).await;
    assert_eq!(app.state.booking.sweep().await.unwrap(), 1);
    verify_clean(&app).await;
}

async fn attempt_rejects_bad_requests_and_taken_seats(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    hold(&app, &alice, &event, &["1-A-5"]).await;
    let bob = customer(&app, "bob");
    let cases = [
        (
            json!({"eventId": event, "seatIds": ["1-A-4", "1-A-5"]}),
            409,
            "seats-unavailable",
        ),
        (
            json!({"eventId": event, "seatIds": ["1-Z-1"]}),
            400,
            "unknown-seats",
        ),
        (
            json!({"eventId": event, "seatIds": ["1-A-1", "1-A-1"]}),
            400,
            "validation-failed",
        ),
        (
            json!({"eventId": event, "seatIds": []}),
            400,
            "validation-failed",
        ),
        (
            json!({"eventId": event, "seatIds": ["x y"]}),
            400,
            "validation-failed",
        ),
        (json!({"eventId": event}), 400, "validation-failed"),
        (
            json!({"eventId": event, "seatIds": ["1-A-1"], "section": "Floor", "quantity": 1}),
            400,
            "validation-failed",
        ),
        (
            json!({"eventId": event, "section": "Balcony", "quantity": 1}),
            400,
            "validation-failed",
        ),
        (
            json!({"eventId": event, "section": "Floor", "quantity": 0}),
            400,
            "validation-failed",
        ),
        (
            json!({"eventId": event, "section": "Lawn", "quantity": 101}),
            400,
            "validation-failed",
        ),
        (
            json!({"eventId": event, "section": "Floor", "quantity": 9}),
            409,
            "ticket-limit",
        ),
        (
            json!({"eventId": "0190d2d4-0000-7000-8000-000000000000", "seatIds": ["1-A-1"]}),
            404,
            "not-found",
        ),
        (
            json!({"eventId": "nope", "seatIds": ["1-A-1"]}),
            404,
            "not-found",
        ),
        (
            json!({"eventId": event, "seatIds": ["1-A-1"], "extra": 1}),
            400,
            "invalid-body",
        ),
    ];
    for (body, status, code) in cases {
        let (got, problem) = attempt(&app, &bob, body.clone()).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "{body}: {problem}"
        );
    }
    let (_, taken) = attempt(
        &app,
        &bob,
        json!({"eventId": event, "seatIds": ["1-A-4", "1-A-5"]}),
    )
    .await;
    assert_eq!(taken["seats"], json!(["1-A-5"]), "the taken seat is named");
    assert_eq!(
        seat_status(&app, &event, "1-A-4").await,
        "OPEN",
        "all or nothing"
    );

    let mut later = eras_tour();
    later["onSaleAt"] = json!("2099-01-01T00:00:00Z");
    later["startsAt"] = json!("2099-06-01T00:00:00Z");
    let future = app.event(&later).await;
    let (status, problem) =
        attempt(&app, &bob, json!({"eventId": future, "seatIds": ["1-A-1"]})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("not-on-sale")),
        "{problem}"
    );
    assert_eq!(problem["onSaleAt"], "2099-01-01T00:00:00Z");
    app.clock.advance(time::Duration::days(400));
    let (status, problem) =
        attempt(&app, &bob, json!({"eventId": event, "seatIds": ["1-A-1"]})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (410, Some("event-started"))
    );
    let organizer_only = app.token("org", &[Role::Organizer]);
    let (status, _) = attempt(
        &app,
        &organizer_only,
        json!({"eventId": event, "seatIds": ["1-A-1"]}),
    )
    .await;
    assert_eq!(status, 403);
}

async fn delete_releases_holds_and_refunds_within_the_window(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await; // 48 h refund window
    let alice = customer(&app, "alice");
    let booking = hold(&app, &alice, &event, &["1-E-1"]).await;
    let del = |id: String| {
        let app = &app;
        let alice = alice.clone();
        async move {
            let res = app
                .http
                .delete(app.url(&format!("/v1/booking/{id}")))
                .bearer_auth(&alice)
                .send()
                .await
                .unwrap();
            status_json(res).await
        }
    };
    let (status, b) = del(booking.clone()).await;
    assert_eq!((status, b["status"].as_str()), (200, Some("CANCELLED")));
    assert_eq!(seat_status(&app, &event, "1-E-1").await, "OPEN");
    let (status, b) = del(booking.clone()).await;
    assert_eq!(
        (status, b["status"].as_str()),
        (200, Some("CANCELLED")),
        "twice is harmless"
    );

    let booking = hold(&app, &alice, &event, &["1-E-2", "1-E-3"]).await;
    let (status, _, _) = commit(
        &app,
        &alice,
        "buy",
        &json!({"bookingId": booking, "paymentMethod": "pm_card_visa"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, b) = del(booking.clone()).await;
    assert_eq!(
        (status, b["status"].as_str()),
        (200, Some("CANCELLED")),
        "{b}"
    );
    assert!(
        b["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "VOID")
    );
    assert_eq!(seat_status(&app, &event, "1-E-2").await, "OPEN");
    let payment = app
        .store
        .unsettled_payments(
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
            10,
        )
        .await
        .unwrap();
    assert!(payment.is_empty(), "refunded at once: {payment:?}");

    // Outside the window: 409, nothing changes.
    let booking = hold(&app, &alice, &event, &["1-E-4"]).await;
    commit(
        &app,
        &alice,
        "buy2",
        &json!({"bookingId": booking, "paymentMethod": "pm_card_visa"}),
    )
    .await;
    app.clock.advance(time::Duration::hours(49));
    let (status, problem) = del(booking.clone()).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("refund-window-closed"))
    );
    assert_eq!(seat_status(&app, &event, "1-E-4").await, "SOLD");
    verify_clean(&app).await;
}

async fn bookings_are_private(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let mallory = customer(&app, "mallory");
    let admin = app.token("root", &[Role::Admin]);
    let booking = hold(&app, &alice, &event, &["1-F-1"]).await;
    let path = format!("/v1/booking/{booking}");
    assert_eq!(app.get_as(&path, &mallory).await.0, 404);
    assert_eq!(app.get_as(&path, &admin).await.0, 200);
    assert_eq!(app.get_as("/v1/booking/not-an-id", &alice).await.0, 404);
    let res = app
        .http
        .delete(app.url(&path))
        .bearer_auth(&mallory)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let update = json!({"contactEmail": "a@example.com", "attendees": [{"seatId": "1-F-1", "name": "Alice A."}]});
    let res = app
        .http
        .put(app.url(&path))
        .bearer_auth(&mallory)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .http
        .put(app.url(&path))
        .bearer_auth(&alice)
        .json(&update)
        .send()
        .await
        .unwrap();
    let (status, b) = status_json(res).await;
    assert_eq!(
        (status, b["contactEmail"].as_str()),
        (200, Some("a@example.com"))
    );
    for bad in [
        json!({"contactEmail": "not an email"}),
        json!({"attendees": [{"seatId": "1-F-2", "name": "X"}]}),
        json!({"attendees": [{"seatId": "1-F-1", "name": ""}]}),
        json!({"nickname": "x"}),
    ] {
        let res = app
            .http
            .put(app.url(&path))
            .bearer_auth(&alice)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(status_json(res).await.0, 400, "{bad}");
    }
    assert_eq!(app.get_as(&path, &alice).await.1["status"], "HOLD");
    let (_, mine) = app.get_as("/v1/tickets", &mallory).await;
    assert_eq!(mine["tickets"], json!([]));
}

/// A scanner token (HS256, the test secret) with an `events` claim.
fn scanner_for(events: &[&str]) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &json!({"sub": "door-7", "roles": ["scanner"], "exp": now + 600, "events": events}),
        &jsonwebtoken::EncodingKey::from_secret(crate::common::SECRET.as_bytes()),
    )
    .unwrap()
}

async fn check_in_at_the_door(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let scanner = app.token("door-3", &[Role::Scanner]);
    let booking = hold(&app, &alice, &event, &["1-G-1", "1-G-2"]).await;
    let (_, paid, _) = commit(
        &app,
        &alice,
        "k",
        &json!({"bookingId": booking, "paymentMethod": "pm_card_visa"}),
    )
    .await;
    let token = paid["tickets"][0]["token"].as_str().unwrap().to_owned();
    let scan = |token: &str, by: &str, event: Option<&str>| {
        let body = match event {
            Some(e) => json!({"token": token, "eventId": e}),
            None => json!({"token": token}),
        };
        let by = by.to_owned();
        let app = &app;
        async move { app.post("/v1/checkin", &by, &body).await }
    };
    assert_eq!(
        scan(&token, &alice, Some(&event)).await.0,
        403,
        "customers cannot scan"
    );
    // A door admits to one event: the event is part of every scan.
    let (status, problem) = scan(&token, &scanner, None).await;
    assert_eq!(status, 400, "{problem}");
    let other = app.event(&eras_tour()).await;
    let (status, problem) = scan(&token, &scanner, Some(&other)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("ticket-wrong-event")),
        "{problem}"
    );
    assert_eq!(problem["ticketEventId"], event.as_str());
    // A scanner limited to other events may not open this door at all.
    let limited = scanner_for(&[&other]);
    let (status, problem) = scan(&token, &limited, Some(&event)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("event-not-allowed")),
        "{problem}"
    );
    // Refusals changed nothing: the ticket is still valid at its own door.
    let (_, mine) = app.get_as("/v1/tickets", &alice).await;
    assert!(
        mine["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "VALID"),
        "{mine}"
    );
    let allowed = scanner_for(&[&other, &event]);
    let (status, ok) = scan(&token, &allowed, Some(&event)).await;
    assert_eq!(
        (status, ok["result"].as_str()),
        (200, Some("ADMITTED")),
        "{ok}"
    );
    let (status, again) = scan(&token, &scanner, Some(&event)).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("already-checked-in"))
    );
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        scan(&forged, &scanner, Some(&event)).await.1["code"],
        "invalid-ticket"
    );
    let second = paid["tickets"][1]["token"].as_str().unwrap();
    assert_eq!(
        scan(second, &scanner, Some(&other)).await.1["code"],
        "ticket-wrong-event"
    );
    // A booking with a ticket used at the door is not refunded.
    let res = app
        .http
        .delete(app.url(&format!("/v1/booking/{booking}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "ticket-used");
    // Cancelled bookings' tickets are void at the door.
    let unused = hold(&app, &alice, &event, &["1-G-5"]).await;
    let (_, unused_paid, _) = commit(
        &app,
        &alice,
        "k2",
        &json!({"bookingId": unused, "paymentMethod": "pm_card_visa"}),
    )
    .await;
    let res = app
        .http
        .delete(app.url(&format!("/v1/booking/{unused}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let void = unused_paid["tickets"][0]["token"].as_str().unwrap();
    assert_eq!(
        scan(void, &scanner, Some(&event)).await.1["code"],
        "ticket-void"
    );
}

async fn unknown_payment_outcomes_are_reconciled(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    for (method, seat) in [
        ("pm_card_timeout", "1-H-1"),
        ("pm_card_lostResponse", "1-H-2"),
    ] {
        let booking = hold(&app, &alice, &event, &[seat]).await;
        let body = json!({"bookingId": booking, "paymentMethod": method});
        let (status, pending, _) = commit(&app, &alice, method, &body).await;
        assert_eq!(
            (status, pending["status"].as_str()),
            (202, Some("PENDING")),
            "{method}: {pending}"
        );
        let (status, problem, _) = commit(&app, &alice, method, &body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (409, Some("request-in-progress"))
        );
        assert_eq!(seat_status(&app, &event, seat).await, "PENDING");
    }
    // Too early: requests might still be waiting on the provider.
    assert_eq!(app.state.booking.reconcile().await.unwrap(), 0);
    app.clock.advance(time::Duration::seconds(31));
    assert_eq!(app.state.booking.reconcile().await.unwrap(), 2);
    for (method, seat) in [
        ("pm_card_timeout", "1-H-1"),
        ("pm_card_lostResponse", "1-H-2"),
    ] {
        assert_eq!(seat_status(&app, &event, seat).await, "SOLD", "{method}");
    }
    let (_, mine) = app.get_as("/v1/tickets", &alice).await;
    assert_eq!(mine["tickets"].as_array().unwrap().len(), 2);
    // The key now answers with the settled outcome.
    let booking = mine["tickets"][0]["bookingId"].as_str().unwrap();
    let (_, read) = app.get_as(&format!("/v1/booking/{booking}"), &alice).await;
    assert_eq!(read["status"], "CONFIRMED");
    verify_clean(&app).await;
}
