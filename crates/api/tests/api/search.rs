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

async fn seat_changes_reach_search_within_a_second(backend: Backend) {
    let app = TestApp::start(backend).await;
    wait_ready(&app).await;
    let (status, created) = app.post("/v1/events", &app.organizer(), &eras_tour()).await;
    assert_eq!(status, 201);
    let id = created["eventId"].as_str().unwrap().to_owned();
    eventually(&app, "q=eras", Duration::from_secs(1), |v| {
        ids(v).contains(&id)
    })
    .await;
    // The booking code writes these; stand in for it with one outbox row (hold of 200 + 100).
    let payload = r#"{"sections":[{"section":1,"available":-200},{"section":2,"available":-100}]}"#;
    let event_id: uuid::Uuid = id.parse().unwrap();
    match backend {
        Backend::Sqlite => {
            let path = app._guards.0.as_ref().unwrap().path().join("boxoffice.db");
            let c = rusqlite::Connection::open(path).unwrap();
            c.execute(
                "INSERT INTO outbox (event_id, kind, payload, created_at) VALUES (?1, 'seats.changed', ?2, 0)",
                rusqlite::params![event_id.as_bytes().to_vec(), payload],
            )
            .unwrap();
        }
        Backend::Postgres => {
            let url = &app._guards.1.as_ref().unwrap().url;
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c.execute(
                "INSERT INTO outbox (event_id, kind, payload) VALUES ($1, 'seats.changed', $2::text::jsonb)",
                &[&event_id, &payload],
            )
            .await
            .unwrap();
        }
    }
    let changed = Instant::now();
    eventually(&app, "q=eras", Duration::from_secs(1), |v| {
        v["events"][0]["seatsLeft"] == 0
    })
    .await;
    assert!(changed.elapsed() < Duration::from_secs(1));
    let v = search(&app, "q=eras&availableOnly=true").await;
    assert!(ids(&v).is_empty(), "{v}");
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
