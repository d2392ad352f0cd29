//! The on-sale waiting room over HTTP on every backend (issue 9): joining (once), the order
//! (random among early joiners, uniformly: checked statistically), admission by rate, the
//! admission token `POST /v1/attempt` asks for, the status stream, and sold out.

use std::time::Duration;

use boxoffice_api::auth::Role;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::common::{Backend, TestApp, eras_tour, status_json};

crate::on_every_backend!(
    a_buyer_waits_is_admitted_and_holds,
    early_joiners_are_admitted_in_uniformly_random_order,
    the_status_stream_follows_a_buyer_until_admitted,
    a_sold_out_room_says_so,
    queued_commits_answer_at_once_and_stream_the_outcome,
    a_queued_purchase_the_queue_lost_is_completed_by_the_reconciler,
    the_seat_map_streams_changes,
);

fn customer(app: &TestApp, name: &str) -> String {
    app.token(name, &[Role::Customer])
}

fn at(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + offset)
        .format(&Rfc3339)
        .unwrap()
}

/// An event whose sale opens in an hour, with a waiting room open now.
async fn rush_event(app: &TestApp, per_minute: u32, sections: Value) -> String {
    let mut e = eras_tour();
    e["onSaleAt"] = json!(at(time::Duration::hours(1)));
    e["sections"] = sections;
    e["policies"]["waitingRoom"] = json!({
        "opensAt": at(time::Duration::minutes(-1)),
        "admitPerMinute": per_minute,
        "admissionMinutes": 10,
    });
    app.event(&e).await
}

async fn join(app: &TestApp, token: &str, event: &str) -> (u16, Value) {
    app.post(&format!("/v1/events/{event}/queue"), token, &json!({}))
        .await
}

async fn attempt(
    app: &TestApp,
    token: &str,
    admission: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut req = app.http.post(app.url("/v1/attempt")).bearer_auth(token);
    if let Some(a) = admission {
        req = req.header("Admission-Token", a);
    }
    status_json(req.json(body).send().await.unwrap()).await
}

/// Polls a place until `status`, for at most `within`.
async fn until_status(
    app: &TestApp,
    token: &str,
    queue: &str,
    status: &str,
    within: Duration,
) -> Value {
    until_place(app, token, queue, |v| v["status"] == status, within).await
}

/// Polls a place until `done` holds for it, for at most `within`.
async fn until_place(
    app: &TestApp,
    token: &str,
    queue: &str,
    done: impl Fn(&Value) -> bool,
    within: Duration,
) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (code, v) = app.get_as(&format!("/v1/queue/{queue}"), token).await;
        assert_eq!(code, 200, "{v}");
        if done(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {v} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_buyer_waits_is_admitted_and_holds(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = rush_event(
        &app,
        60,
        json!([{"name": "Floor", "rows": 2, "seatsPerRow": 10, "priceCents": 25000}]),
    )
    .await;
    let (code, e) = app.get(&format!("/v1/events/{event}")).await;
    assert_eq!(code, 200);
    assert_eq!(e["policies"]["waitingRoom"]["admitPerMinute"], 60);

    let (alice, bob) = (customer(&app, "alice"), customer(&app, "bob"));
    let hold = json!({"eventId": event, "section": "Floor", "quantity": 2});
    // No token, no hold.
    let (code, p) = attempt(&app, &alice, None, &hold).await;
    assert_eq!(
        (code, p["code"].as_str()),
        (403, Some("admission-required")),
        "{p}"
    );

    let (code, a) = join(&app, &alice, &event).await;
    assert_eq!(code, 201, "{a}");
    assert_eq!(a["status"], "WAITING");
    assert_eq!(a["position"], 1);
    assert!(a["estimatedWaitSeconds"].as_u64().unwrap() >= 3500, "{a}");
    let (code, again) = join(&app, &alice, &event).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(
        again["queueId"], a["queueId"],
        "joining twice keeps the place"
    );
    let (code, b) = join(&app, &bob, &event).await;
    assert_eq!(code, 201);
    let queue_a = a["queueId"].as_str().unwrap().to_owned();
    let queue_b = b["queueId"].as_str().unwrap().to_owned();
    // Someone else's place is nobody's business.
    let (code, _) = app.get_as(&format!("/v1/queue/{queue_a}"), &bob).await;
    assert_eq!(code, 404);
    let (code, _) = app.get(&format!("/v1/queue/{queue_a}")).await;
    assert_eq!(code, 401);

    // Nobody is let in before the sale opens: once a round has seen both buyers (they hold
    // places 1 and 2, in a random order), both are still waiting.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, a) = app.get_as(&format!("/v1/queue/{queue_a}"), &alice).await;
        let (_, b) = app.get_as(&format!("/v1/queue/{queue_b}"), &bob).await;
        assert_eq!(
            (a["status"].as_str(), b["status"].as_str()),
            (Some("WAITING"), Some("WAITING"))
        );
        let mut places = [a["position"].as_u64(), b["position"].as_u64()];
        places.sort();
        if places == [Some(1), Some(2)] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{a} {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The sale opens: the first batch (one a second at 60 a minute) is let in.
    app.clock.advance(time::Duration::hours(1));
    let first = customer(&app, "alice");
    let admitted_a =
        until_status(&app, &first, &queue_a, "ADMITTED", Duration::from_secs(10)).await;
    let admitted_b = until_status(&app, &bob, &queue_b, "ADMITTED", Duration::from_secs(10)).await;
    let token_a = admitted_a["admissionToken"].as_str().unwrap();
    let token_b = admitted_b["admissionToken"].as_str().unwrap();
    assert!(admitted_a["admissionExpiresAt"].is_string());
    assert!(admitted_a["position"].is_null());

    // Someone else's token, or a forged one, does not let you in.
    let (code, p) = attempt(&app, &alice, Some(token_b), &hold).await;
    assert_eq!(
        (code, p["code"].as_str()),
        (403, Some("admission-required"))
    );
    let (code, _) = attempt(&app, &alice, Some("not.a.token"), &hold).await;
    assert_eq!(code, 403);
    // A token for another event does not either.
    let other = rush_event(
        &app,
        60,
        json!([{"name": "Floor", "rows": 1, "seatsPerRow": 10, "priceCents": 25000}]),
    )
    .await;
    let (code, _) = attempt(
        &app,
        &alice,
        Some(token_a),
        &json!({"eventId": other, "section": "Floor", "quantity": 1}),
    )
    .await;
    assert_eq!(code, 403);
    let (code, held) = attempt(&app, &alice, Some(token_a), &hold).await;
    assert_eq!(code, 201, "{held}");

    // The admission lapses: the token is dead, and joining again queues at the back.
    app.clock.advance(time::Duration::minutes(11));
    let (code, _) = attempt(&app, &bob, Some(token_b), &hold).await;
    assert_eq!(code, 403);
    let (code, lapsed) = app.get_as(&format!("/v1/queue/{queue_b}"), &bob).await;
    assert_eq!(code, 200);
    assert_eq!(lapsed["status"], "EXPIRED");
    let (code, back) = join(&app, &bob, &event).await;
    assert_eq!(code, 200);
    assert_eq!(back["queueId"], queue_b.as_str());
    assert!(
        back["status"] == "WAITING" || back["status"] == "ADMITTED",
        "{back}"
    );

    // Events without a room have nothing to join.
    let plain = app.event(&eras_tour()).await;
    let (code, p) = join(&app, &alice, &plain).await;
    assert_eq!((code, p["code"].as_str()), (409, Some("no-waiting-room")));
    let (code, _) = join(&app, &alice, "not-an-id").await;
    assert_eq!(code, 404);
}

/// Everyone who joins before the sale gets a random place: across many rooms, the order of
/// admission is unrelated to the order of joining.
async fn early_joiners_are_admitted_in_uniformly_random_order(backend: Backend) {
    const BUYERS: usize = 10;
    const ROOMS: usize = 24;
    let app = TestApp::start(backend).await;
    let mut rooms = Vec::new();
    for _ in 0..ROOMS {
        let event = rush_event(
            &app,
            60,
            json!([{"name": "Floor", "rows": 1, "seatsPerRow": 20, "priceCents": 1000}]),
        )
        .await;
        let mut places = Vec::new();
        for i in 0..BUYERS {
            let t = customer(&app, &format!("fan-{i}"));
            let (code, v) = join(&app, &t, &event).await;
            assert_eq!(code, 201, "{v}");
            places.push((t, v["queueId"].as_str().unwrap().to_owned()));
        }
        rooms.push(places);
    }
    let mut rho_sum = 0.0;
    let mut first_joiner_places = Vec::new();
    for places in &rooms {
        // Once a round has seen the whole room the places are 1..=BUYERS, each once (a round
        // that missed a late joiner gives two buyers one place).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let positions = loop {
            let mut positions = Vec::new();
            for (t, q) in places {
                let (_, v) = app.get_as(&format!("/v1/queue/{q}"), t).await;
                positions.push(v["position"].as_u64().expect("waiting, with a position") as f64);
            }
            let mut sorted = positions.clone();
            sorted.sort_by(f64::total_cmp);
            if sorted == (1..=BUYERS).map(|p| p as f64).collect::<Vec<_>>() {
                break positions;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "places never 1..={BUYERS}, each once: {positions:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        first_joiner_places.push(positions[0]);
        // Spearman's rho between the order of joining and the place.
        let n = BUYERS as f64;
        let d2: f64 = positions
            .iter()
            .enumerate()
            .map(|(i, p)| (i as f64 + 1.0 - p).powi(2))
            .sum();
        rho_sum += 1.0 - 6.0 * d2 / (n * (n * n - 1.0));
    }
    // Under uniform shuffles rho has mean 0 and standard deviation 1/sqrt(n-1) per room; the
    // mean over the rooms is within five standard errors of 0. Arrival order (rho = 1) fails.
    let mean_rho = rho_sum / ROOMS as f64;
    let bound = 5.0 / ((BUYERS as f64 - 1.0).sqrt() * (ROOMS as f64).sqrt());
    assert!(
        mean_rho.abs() < bound,
        "mean rho {mean_rho} (bound {bound})"
    );
    // The first to join lands anywhere: the mean of their places is near (n+1)/2.
    let mean_first = first_joiner_places.iter().sum::<f64>() / ROOMS as f64;
    let sd = (((BUYERS * BUYERS - 1) as f64) / 12.0).sqrt() / (ROOMS as f64).sqrt();
    let expected = (BUYERS as f64 + 1.0) / 2.0;
    assert!(
        (mean_first - expected).abs() < 5.0 * sd,
        "first joiners' mean place {mean_first}, expected {expected} ± {}",
        5.0 * sd
    );
}

/// Reads server-sent events from a response until one named `until`; returns the names seen
/// and the last event's data.
async fn read_events(
    res: &mut reqwest::Response,
    until: &str,
    within: Duration,
) -> (Vec<String>, Value) {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = String::new();
    let mut names = Vec::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .unwrap_or_else(|_| panic!("no `{until}` event within {within:?}; saw {names:?}"))
            .expect("stream")
            .unwrap_or_else(|| panic!("stream ended before `{until}`; saw {names:?}"));
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if name.is_empty() {
                continue;
            }
            names.push(name.clone());
            if name == until {
                return (names, serde_json::from_str(&data).expect("json data"));
            }
        }
    }
}

async fn the_status_stream_follows_a_buyer_until_admitted(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = rush_event(
        &app,
        60,
        json!([{"name": "Floor", "rows": 1, "seatsPerRow": 10, "priceCents": 25000}]),
    )
    .await;
    let alice = customer(&app, "alice");
    let (_, a) = join(&app, &alice, &event).await;
    let queue = a["queueId"].as_str().unwrap();
    let res = app
        .http
        .get(app.url(&format!("/v1/queue/{queue}/events")))
        .bearer_auth(&alice)
        .header("Last-Event-ID", "0-0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(h["x-accel-buffering"], "no");
    assert!(h["cache-control"].to_str().unwrap().contains("no-cache"));
    let mut res = res;
    // First where the buyer stands; then the sale opens and the stream lets them in.
    let (names, place) = read_events(&mut res, "position", Duration::from_secs(10)).await;
    assert_eq!(names, vec!["position"]);
    assert_eq!(place["position"], 1);
    app.clock.advance(time::Duration::hours(1));
    let (_, admitted) = read_events(&mut res, "admitted", Duration::from_secs(15)).await;
    assert_eq!(admitted["status"], "ADMITTED");
    let token = admitted["admissionToken"].as_str().unwrap();
    let (code, held) = attempt(
        &app,
        &alice,
        Some(token),
        &json!({"eventId": event, "section": "Floor", "quantity": 1}),
    )
    .await;
    assert_eq!(code, 201, "{held}");
    // Someone else cannot follow it.
    let bob = customer(&app, "bob");
    let res = app
        .http
        .get(app.url(&format!("/v1/queue/{queue}/events")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

async fn a_sold_out_room_says_so(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = rush_event(
        &app,
        600,
        json!([{"name": "Floor", "rows": 1, "seatsPerRow": 2, "priceCents": 25000}]),
    )
    .await;
    app.clock.advance(time::Duration::hours(1));
    let alice = customer(&app, "alice");
    let (_, a) = join(&app, &alice, &event).await;
    let a = until_status(
        &app,
        &alice,
        a["queueId"].as_str().unwrap(),
        "ADMITTED",
        Duration::from_secs(10),
    )
    .await;
    let (code, held) = attempt(
        &app,
        &alice,
        a["admissionToken"].as_str(),
        &json!({"eventId": event, "section": "Floor", "quantity": 2}),
    )
    .await;
    assert_eq!(code, 201, "{held}");
    let res = app
        .http
        .post(app.url("/v1/commit"))
        .bearer_auth(&alice)
        .header("Idempotency-Key", "sold-out-1")
        .json(&json!({"bookingId": held["bookingId"], "paymentMethod": "pm_card_visa"}))
        .send()
        .await
        .unwrap();
    let (code, paid) = status_json(res).await;
    assert!(code == 200 || code == 202, "{paid}");
    // Every seat sold: a later buyer is told, not kept waiting.
    let bob = customer(&app, "bob");
    let (_, b) = join(&app, &bob, &event).await;
    let queue_b = b["queueId"].as_str().unwrap().to_owned();
    let v = until_status(&app, &bob, &queue_b, "SOLD_OUT", Duration::from_secs(15)).await;
    assert!(v["admissionToken"].is_null());
}

/// An admitted buyer of a waiting-room event with `n` seats held: (token, bookingId).
async fn admitted_hold(app: &TestApp, event: &str, who: &str, n: u32) -> (String, String) {
    let t = customer(app, who);
    let (_, q) = join(app, &t, event).await;
    let q = until_status(
        app,
        &t,
        q["queueId"].as_str().unwrap(),
        "ADMITTED",
        Duration::from_secs(10),
    )
    .await;
    let (code, held) = attempt(
        app,
        &t,
        q["admissionToken"].as_str(),
        &json!({"eventId": event, "section": "Floor", "quantity": n}),
    )
    .await;
    assert_eq!(code, 201, "{held}");
    (t, held["bookingId"].as_str().unwrap().to_owned())
}

async fn commit(
    app: &TestApp,
    token: &str,
    booking: &str,
    method: &str,
    key: &str,
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

async fn follow(app: &TestApp, token: &str, url: &str, until: &str) -> (Vec<String>, Value) {
    let res = app
        .http
        .get(app.url(url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut res = res;
    read_events(&mut res, until, Duration::from_secs(20)).await
}

async fn queued_commits_answer_at_once_and_stream_the_outcome(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = rush_event(
        &app,
        600,
        json!([{"name": "Floor", "rows": 2, "seatsPerRow": 10, "priceCents": 25000}]),
    )
    .await;
    app.clock.advance(time::Duration::hours(1));

    // Paid: 202 with a status URL, then the stream ends with the tickets; a replay then gives
    // the final answer.
    let (alice, booking) = admitted_hold(&app, &event, "alice", 2).await;
    let (code, queued) = commit(&app, &alice, &booking, "pm_card_visa", "q-alice").await;
    assert_eq!(code, 202, "{queued}");
    assert_eq!(queued["status"], "PENDING");
    assert_eq!(queued["bookingId"], booking.as_str());
    let url = queued["statusUrl"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/v1/booking/{booking}/events"));
    let (_, done) = follow(&app, &alice, &url, "confirmed").await;
    assert_eq!(done["status"], "CONFIRMED");
    assert_eq!(done["tickets"].as_array().unwrap().len(), 2, "{done}");
    let (code, replay) = commit(&app, &alice, &booking, "pm_card_visa", "q-alice").await;
    assert_eq!(code, 200, "{replay}");
    assert_eq!(replay["status"], "CONFIRMED");
    let (code, p) = commit(&app, &alice, &booking, "pm_card_mastercard", "q-alice").await;
    assert_eq!(
        (code, p["code"].as_str()),
        (422, Some("idempotency-key-reused"))
    );
    // Someone else cannot follow it.
    let bob = customer(&app, "bob");
    let res = app
        .http
        .get(app.url(&url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Declined: the stream ends with the problem, the hold stays, and a retry pays.
    let (carol, booking) = admitted_hold(&app, &event, "carol", 1).await;
    let (code, _) = commit(
        &app,
        &carol,
        &booking,
        "pm_card_chargeDeclined",
        "q-carol-1",
    )
    .await;
    assert_eq!(code, 202);
    let (_, problem) = follow(
        &app,
        &carol,
        &format!("/v1/booking/{booking}/events"),
        "problem",
    )
    .await;
    assert_eq!(problem["code"], "payment-declined", "{problem}");
    assert_eq!(problem["status"], 402);
    let (code, replay) = commit(
        &app,
        &carol,
        &booking,
        "pm_card_chargeDeclined",
        "q-carol-1",
    )
    .await;
    assert_eq!(code, 402, "{replay}");
    // A stream opened after the decline (it never saw PENDING) still ends with the problem:
    // the hold records why its last payment did not go through.
    let (names, late) = follow(
        &app,
        &carol,
        &format!("/v1/booking/{booking}/events"),
        "problem",
    )
    .await;
    assert_eq!(names, vec!["problem"]);
    assert_eq!(late["code"], "payment-declined", "{late}");
    let held = app
        .http
        .get(app.url(&format!("/v1/booking/{booking}")))
        .bearer_auth(&carol)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(held["status"], "HOLD", "{held}");
    assert_eq!(held["statusReason"], "payment-declined", "{held}");
    let (code, _) = commit(&app, &carol, &booking, "pm_card_visa", "q-carol-2").await;
    assert_eq!(code, 202);
    let (names, done) = follow(
        &app,
        &carol,
        &format!("/v1/booking/{booking}/events"),
        "confirmed",
    )
    .await;
    assert_eq!(done["status"], "CONFIRMED", "{names:?}");
    assert!(
        done.get("statusReason").is_none(),
        "a new commit clears it: {done}"
    );

    // The provider does not answer: replays give the same 202 while the outcome is open.
    let (dave, booking) = admitted_hold(&app, &event, "dave", 1).await;
    let (code, first) = commit(&app, &dave, &booking, "pm_card_timeout", "q-dave").await;
    assert_eq!(code, 202, "{first}");
    let (code, again) = commit(&app, &dave, &booking, "pm_card_timeout", "q-dave").await;
    assert_eq!(code, 202, "{again}");
    assert_eq!(again, first, "the same answer until the outcome is final");
    // The stream says PENDING first.
    let res = app
        .http
        .get(app.url(&format!("/v1/booking/{booking}/events")))
        .bearer_auth(&dave)
        .send()
        .await
        .unwrap();
    let mut res = res;
    let (names, status) = read_events(&mut res, "status", Duration::from_secs(5)).await;
    assert_eq!(names, vec!["status"]);
    assert_eq!(status["status"], "PENDING");
    let findings = app.store.verify(app.clock_now()).await.unwrap();
    assert!(findings.is_empty(), "{findings:?}");
}

/// A purchase whose step 1 was done but which the queue never charged (a node killed with
/// commits queued, a full queue) is charged and settled by the reconciler.
async fn a_queued_purchase_the_queue_lost_is_completed_by_the_reconciler(backend: Backend) {
    use boxoffice_domain::ports::{CommitBegin, CommitRequest};
    let app = TestApp::start(backend).await;
    let event = rush_event(
        &app,
        600,
        json!([{"name": "Floor", "rows": 1, "seatsPerRow": 10, "priceCents": 25000}]),
    )
    .await;
    app.clock.advance(time::Duration::hours(1));
    let (_, booking) = admitted_hold(&app, &event, "erin", 2).await;
    let booking_id: boxoffice_domain::ids::BookingId = booking.parse().unwrap();
    let begun = app
        .store
        .begin_commit(&CommitRequest {
            customer: boxoffice_domain::ids::CustomerId::parse("erin").unwrap(),
            booking_id,
            idempotency_key: "lost-1".into(),
            fingerprint: boxoffice_api::booking::fingerprint(booking_id, "pm_card_visa"),
            payment_id: boxoffice_domain::ids::PaymentId::new(),
            provider_key: boxoffice_api::booking::provider_key("erin", "lost-1"),
            provider: "sandbox".into(),
            method: "pm_card_visa".into(),
            now: app.clock_now(),
            queued: true,
        })
        .await
        .unwrap();
    assert!(matches!(begun, CommitBegin::Started { .. }));
    // Long after: the hold has run out, the provider never heard of it; the reconciler asks
    // with the purchase's key, the seats are still free, and the booking is confirmed.
    app.clock.advance(time::Duration::minutes(10));
    app.state.booking.reconcile().await.unwrap();
    let b = app.store.booking(booking_id).await.unwrap().unwrap();
    assert_eq!(
        b.status,
        boxoffice_domain::booking::BookingStatus::Confirmed,
        "{b:?}"
    );
    let erin = customer(&app, "erin");
    let (code, replay) = commit(&app, &erin, &booking, "pm_card_visa", "lost-1").await;
    assert_eq!(code, 200, "{replay}");
    assert_eq!(replay["tickets"].as_array().unwrap().len(), 2);
    let findings = app.store.verify(app.clock_now()).await.unwrap();
    assert!(findings.is_empty(), "{findings:?}");
}

async fn the_seat_map_streams_changes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let res = app
        .http
        .get(app.url(&format!("/v1/events/{event}/seats/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let mut res = res;
    // The first event: every section's counts.
    let first = next_event(&mut res).await;
    assert_eq!(first["sections"][0]["section"], "Floor");
    assert_eq!(first["sections"][0]["available"], 200);
    let alice = customer(&app, "alice");
    let (code, held) = app
        .post(
            "/v1/attempt",
            &alice,
            &json!({"eventId": event, "seatIds": ["1-A-1", "1-A-2"]}),
        )
        .await;
    assert_eq!(code, 201, "{held}");
    let change = loop {
        let u = next_event(&mut res).await;
        if !u["seats"].as_array().unwrap().is_empty() {
            break u;
        }
    };
    let mut seats: Vec<(String, String)> = change["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["seatId"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seats.sort();
    assert_eq!(
        seats,
        vec![
            ("1-A-1".into(), "HOLD".into()),
            ("1-A-2".into(), "HOLD".into())
        ]
    );
    assert_eq!(change["sections"][0]["available"], 198);
    // Released: open again.
    let booking = held["bookingId"].as_str().unwrap();
    let res2 = app
        .http
        .delete(app.url(&format!("/v1/booking/{booking}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert!(res2.status().is_success());
    let change = loop {
        let u = next_event(&mut res).await;
        if !u["seats"].as_array().unwrap().is_empty() {
            break u;
        }
    };
    assert!(
        change["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "OPEN"),
        "{change}"
    );
    assert_eq!(change["sections"][0]["available"], 200);
    let (code, _) = app
        .get(&format!("/v1/events/{}/seats/events", uuid_like()))
        .await;
    assert_eq!(code, 404);
}

fn uuid_like() -> String {
    "0191c8a2-0000-7000-8000-000000000000".into()
}

/// The data of the next server-sent event, within 10 s.
async fn next_event(res: &mut reqwest::Response) -> Value {
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            if data.is_empty() {
                continue;
            }
            return serde_json::from_str(&data).expect("json");
        }
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .expect("an event within 10 s")
            .expect("stream")
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}
