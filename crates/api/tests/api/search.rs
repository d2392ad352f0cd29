//! `GET /v1/events` over HTTP on both backends: change-data-capture visibility, typos,
//! pagination under concurrent inserts, seat counts, and a 400 naming every bad parameter.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use boxoffice_conformance::fixtures;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, eras_tour};

crate::on_every_backend!(
    a_created_event_is_searchable_within_a_second,
    typos_find_the_event_over_http,
    pages_do_not_repeat_or_skip_under_concurrent_inserts,
    seat_changes_reach_search_within_a_second,
    every_bad_parameter_gets_a_400_naming_it,
);

async fn search(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/events?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn ids(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {v}"))
        .iter()
        .map(|e| e["eventId"].as_str().expect("eventId").to_owned())
        .collect()
}

/// Polls until `found` holds, failing after `within`.
async fn eventually(
    app: &TestApp,
    query: &str,
    within: Duration,
    found: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let v = search(app, query).await;
        if found(&v) {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "{query}: not there after {within:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_ready(app: &TestApp) {
    let start = Instant::now();
    while !app.search.is_ready() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the indexer never caught up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_created_event_is_searchable_within_a_second(backend: Backend) {
    let app = TestApp::start(backend).await;
    wait_ready(&app).await;
    let (status, created) = app.post("/v1/events", &app.organizer(), &eras_tour()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["eventId"].as_str().unwrap().to_owned();
    let v = eventually(&app, "q=eras", Duration::from_secs(1), |v| {
        ids(v).contains(&id)
    })
    .await;
    let hit = &v["events"][0];
    assert_eq!(hit["name"], "Taylor Swift | The Eras Tour");
    assert_eq!(hit["venue"]["city"], "Seattle");
    assert_eq!(hit["minPriceCents"], 5000);
    assert_eq!(hit["seatsLeft"], 300);
    assert_eq!(v["facets"]["category"]["concert"], 1);
}

async fn typos_find_the_event_over_http(backend: Backend) {
    let app = TestApp::start(backend).await;
    wait_ready(&app).await;
    let (status, created) = app.post("/v1/events", &app.organizer(), &eras_tour()).await;
    assert_eq!(status, 201);
    let id = created["eventId"].as_str().unwrap().to_owned();
    for q in [
        "tayler%20swfit",
        "TAYLOR",
        "taylo",
        "seattle",
        "lumen%20field",
    ] {
        eventually(&app, &format!("q={q}"), Duration::from_secs(2), |v| {
            ids(v).first() == Some(&id)
        })
        .await;
    }
    let near = search(&app, "lat=47.6&lon=-122.33&radiusKm=5&sort=distance").await;
    assert_eq!(ids(&near), vec![id.clone()]);
    assert!(near["events"][0]["distanceKm"].as_f64().unwrap() < 5.0);
    let far = search(&app, "lat=40.7&lon=-74.0&radiusKm=100").await;
    assert!(ids(&far).is_empty());
}

async fn pages_do_not_repeat_or_skip_under_concurrent_inserts(backend: Backend) {
    let app = TestApp::start(backend).await;
    let t = fixtures::now();
    let first: Vec<_> = (0..30).map(|_| fixtures::concert(t)).collect();
    app.store.create_events_bulk(&first).await.expect("bulk");
    eventually(&app, "q=eras&limit=1", Duration::from_secs(5), |v| {
        v["total"] == 30
    })
    .await;

    let mut seen = Vec::new();
    let mut query = "q=tayler%20swfit&limit=4".to_owned();
    loop {
        let page = search(&app, &query).await;
        seen.extend(ids(&page));
        // Inserts land while we page.
        let more: Vec<_> = (0..3).map(|_| fixtures::concert(t)).collect();
        app.store.create_events_bulk(&more).await.expect("more");
        match page["nextCursor"].as_str() {
            Some(c) => query = format!("q=tayler%20swfit&limit=4&cursor={c}"),
            None => break,
        }
        assert!(seen.len() < 1_000, "pagination does not end");
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an event came twice");
    for e in &first {
        assert!(unique.contains(&e.id.to_string()), "skipped {}", e.id);
    }
}

/// Holds, releases, sales, refunds and expiry through the real booking flow move the seats
/// left in search within a second, without re-indexing the event.
async fn seat_changes_reach_search_within_a_second(backend: Backend) {
    use boxoffice_api::auth::Role;
    let app = TestApp::start(backend).await;
    wait_ready(&app).await;
    let mut body = eras_tour();
    body["sections"] = json!([
        {"name": "Floor", "rows": 2, "seatsPerRow": 4, "priceCents": 25000},
        {"name": "Lawn", "capacity": 4, "priceCents": 5000}
    ]);
    let (status, created) = app.post("/v1/events", &app.organizer(), &body).await;
    assert_eq!(status, 201);
    let id = created["eventId"].as_str().unwrap().to_owned();
    let left = |n: u64| {
        let id = id.clone();
        move |v: &Value| {
            v["events"]
                .as_array()
                .and_then(|es| es.iter().find(|e| e["eventId"] == id.as_str()))
                .is_some_and(|e| e["seatsLeft"] == n)
        }
    };
    eventually(&app, "q=eras", Duration::from_secs(1), left(12)).await;
    let alice = app.token("alice", &[Role::Customer]);
    let bob = app.token("bob", &[Role::Customer]);
    let hold = |token: &str, body: Value| {
        let (app, token) = (&app, token.to_owned());
        async move {
            let (status, b) = app.post("/v1/attempt", &token, &body).await;
            assert_eq!(status, 201, "{b}");
            b["bookingId"].as_str().unwrap().to_owned()
        }
    };
    let a = hold(
        &alice,
        json!({"eventId": id, "section": "Floor", "quantity": 8}),
    )
    .await;
    let b = hold(
        &bob,
        json!({"eventId": id, "section": "Lawn", "quantity": 4}),
    )
    .await;
    let changed = Instant::now();
    eventually(&app, "q=eras", Duration::from_secs(1), left(0)).await;
    assert!(changed.elapsed() < Duration::from_secs(1));
    let v = search(&app, "q=eras&availableOnly=true").await;
    assert!(
        !ids(&v).contains(&id),
        "sold out events are not available: {v}"
    );

    // Bob lets his hold go: four places are back.
    let res = app
        .http
        .delete(app.url(&format!("/v1/booking/{b}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    eventually(&app, "q=eras", Duration::from_secs(1), left(4)).await;
    // Alice pays: held seats becoming sold change nothing in availability …
    let res = app
        .http
        .post(app.url("/v1/commit"))
        .bearer_auth(&alice)
        .header("Idempotency-Key", "k")
        .json(&json!({"bookingId": a, "paymentMethod": "pm_card_visa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // … and cancelling within the refund window puts her eight back.
    let res = app
        .http
        .delete(app.url(&format!("/v1/booking/{a}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    eventually(&app, "q=eras", Duration::from_secs(1), left(12)).await;
    // A hold that lapses counts as taken until the sweeper frees it, then comes back.
    hold(
        &bob,
        json!({"eventId": id, "section": "Lawn", "quantity": 3}),
    )
    .await;
    eventually(&app, "q=eras", Duration::from_secs(1), left(9)).await;
    app.clock.advance(time::Duration::minutes(6));
    assert_eq!(app.state.booking.sweep().await.unwrap(), 1);
    eventually(&app, "q=eras", Duration::from_secs(1), left(12)).await;
    let v = search(&app, "q=eras&availableOnly=true").await;
    assert!(ids(&v).contains(&id), "{v}");
}

async fn every_bad_parameter_gets_a_400_naming_it(backend: Backend) {
    let app = TestApp::start(backend).await;
    let cases = [
        ("lat=91&lon=0", "lat"),
        ("lat=abc&lon=0", "lat"),
        ("lat=10", "lon"),
        ("lat=10&lon=500", "lon"),
        ("radiusKm=10", "lat"),
        ("lat=10&lon=10&radiusKm=-1", "radiusKm"),
        ("category=opera", "category"),
        ("priceMin=-5", "priceMin"),
        ("priceMax=ten", "priceMax"),
        ("priceMin=500&priceMax=100", "priceMax"),
        ("startsAfter=yesterday", "startsAfter"),
        ("startsBefore=2027-13-01T00:00:00Z", "startsBefore"),
        ("availableOnly=maybe", "availableOnly"),
        ("sort=popular", "sort"),
        ("sort=distance", "sort"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("zipCode=%3Cscript%3E", "zipCode"),
        ("colour=red", "colour"),
        ("q=a&q=b", "q"),
    ];
    for (query, parameter) in cases {
        let (status, problem) = app.get(&format!("/v1/events?{query}")).await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["code"], "invalid-parameter", "{query}: {problem}");
        assert_eq!(problem["parameter"], parameter, "{query}: {problem}");
    }
    // A cursor from another search is refused too.
    let t = fixtures::now();
    let events: Vec<_> = (0..3).map(|_| fixtures::concert(t)).collect();
    app.store.create_events_bulk(&events).await.expect("bulk");
    let page = eventually(&app, "q=eras&limit=1", Duration::from_secs(5), |v| {
        v["total"] == 3
    })
    .await;
    let cursor = page["nextCursor"].as_str().unwrap();
    let (status, problem) = app
        .get(&format!("/v1/events?q=jazz&limit=1&cursor={cursor}"))
        .await;
    assert_eq!((status, &problem["parameter"]), (400, &json!("cursor")));
}

#[tokio::test]
async fn search_is_documented_beside_event_creation() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let path = &doc["paths"]["/v1/events"];
    assert!(path["post"].is_object(), "{path}");
    let get = &path["get"];
    let params: Vec<&str> = get["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "q",
        "zipCode",
        "lat",
        "lon",
        "radiusKm",
        "category",
        "priceMin",
        "priceMax",
        "startsAfter",
        "startsBefore",
        "availableOnly",
        "sort",
        "limit",
        "cursor",
    ] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
}
