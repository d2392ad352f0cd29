//! Creating events and reading them back.

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, eras_tour};

crate::on_every_backend!(
    created_event_comes_back_with_a_complete_seat_map,
    invalid_events_name_the_offending_field,
    only_organizers_create_events,
    stadium_event_with_fifty_thousand_seats,
    unknown_and_malformed_event_ids_are_404,
);

async fn created_event_comes_back_with_a_complete_seat_map(backend: Backend) {
    let app = TestApp::start(backend).await;
    let res = app
        .http
        .post(app.url("/v1/events"))
        .bearer_auth(app.organizer())
        .json(&eras_tour())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();
    let id = created["eventId"].as_str().unwrap();
    assert_eq!(location, format!("/v1/events/{id}"));
    assert_eq!(created["capacity"], 300);
    assert_eq!(created["minPriceCents"], 5000);
    assert_eq!(created["saleStatus"], "ON_SALE");
    assert_eq!(created["organizerId"], "org-1");
    assert_eq!(created["venue"]["zipCode"], "98134");

    let (status, event) = app.get(&location).await;
    assert_eq!(status, 200);
    assert_eq!(
        event, created,
        "a read returns exactly what creation answered"
    );

    let (status, map) = app.get(&format!("{location}/seats")).await;
    assert_eq!(status, 200);
    let seats = map["seats"].as_array().unwrap();
    assert_eq!(seats.len(), 200);
    assert_eq!(
        seats[0],
        json!({"seatId": "1-A-1", "section": "Floor", "row": "A", "number": 1,
               "priceCents": 25000, "status": "OPEN"})
    );
    assert_eq!(seats[199]["seatId"], "1-J-20");
    let sections = map["sections"].as_array().unwrap();
    assert_eq!(sections[0]["available"], 200);
    assert_eq!(sections[1]["name"], "Lawn");
    assert_eq!(sections[1]["kind"], "generalAdmission");
    assert_eq!(sections[1]["available"], 100);
}

type Mutation = Box<dyn Fn(&mut Value)>;

async fn invalid_events_name_the_offending_field(backend: Backend) {
    let app = TestApp::start(backend).await;
    let org = app.organizer();
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "sections[0].priceCents",
            Box::new(|e| e["sections"][0]["priceCents"] = json!(-1)),
        ),
        (
            "sections[1]",
            Box::new(|e| e["sections"][1]["rows"] = json!(3)),
        ),
        (
            "sections[0].rows",
            Box::new(|e| e["sections"][0]["rows"] = json!(0)),
        ),
        (
            "sections[1].name",
            Box::new(|e| e["sections"][1]["name"] = json!("floor")),
        ),
        ("sections", Box::new(|e| e["sections"] = json!([]))),
        ("currency", Box::new(|e| e["currency"] = json!("DOLLARS"))),
        ("category", Box::new(|e| e["category"] = json!("wrestling"))),
        ("venue.lat", Box::new(|e| e["venue"]["lat"] = json!(91.0))),
        (
            "venue.country",
            Box::new(|e| e["venue"]["country"] = json!("USA")),
        ),
        (
            "venue.name",
            Box::new(|e| e["venue"]["name"] = json!("   ")),
        ),
        (
            "startsAt",
            Box::new(|e| e["startsAt"] = json!("2001-01-01T00:00:00Z")),
        ),
        (
            "onSaleAt",
            Box::new(|e| e["onSaleAt"] = json!("2099-01-01T00:00:00Z")),
        ),
        (
            "policies.maxTicketsPerCustomer",
            Box::new(|e| e["policies"]["maxTicketsPerCustomer"] = json!(0)),
        ),
        ("name", Box::new(|e| e["name"] = json!("x".repeat(201)))),
    ];
    for (field, mutate) in cases {
        let mut body = eras_tour();
        mutate(&mut body);
        let (status, problem) = app.post("/v1/events", &org, &body).await;
        assert_eq!(status, 400, "{field}: {problem}");
        assert_eq!(problem["code"], "validation-failed", "{field}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    // Shape errors: wrong types and unknown fields are rejected before validation.
    for mutate in [
        Box::new(|e: &mut Value| e["sections"][0]["rows"] = json!("ten"))
            as Box<dyn Fn(&mut Value)>,
        Box::new(|e: &mut Value| e["surprise"] = json!(true)),
        Box::new(|e: &mut Value| e["venue"]["floor"] = json!(3)),
        Box::new(|e: &mut Value| e["startsAt"] = json!("next tuesday")),
        Box::new(|e: &mut Value| e["sections"][0]["rows"] = json!(1e12)),
    ] {
        let mut body = eras_tour();
        mutate(&mut body);
        let (status, problem) = app.post("/v1/events", &org, &body).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["code"], "invalid-body", "{problem}");
    }
}

async fn only_organizers_create_events(backend: Backend) {
    let app = TestApp::start(backend).await;
    use boxoffice_api::auth::Role;
    let customer = app.token("alice", &[Role::Customer]);
    let (status, problem) = app.post("/v1/events", &customer, &eras_tour()).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["code"], "forbidden");
    // The role is checked before the body: a customer learns nothing about validation.
    let (status, _) = app
        .post("/v1/events", &customer, &json!({"nonsense": 1}))
        .await;
    assert_eq!(status, 403);
    let admin = app.token("root", &[Role::Admin]);
    let (status, _) = app.post("/v1/events", &admin, &eras_tour()).await;
    assert_eq!(status, 201, "admins may do what organizers do");
}

async fn stadium_event_with_fifty_thousand_seats(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut body = eras_tour();
    body["sections"] = json!([
        {"name": "Lower", "rows": 50, "seatsPerRow": 400, "priceCents": 15000},
        {"name": "Upper", "rows": 50, "seatsPerRow": 400, "priceCents": 9000},
        {"name": "Field", "capacity": 10000, "priceCents": 20000}
    ]);
    let (status, event) = app.post("/v1/events", &app.organizer(), &body).await;
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["capacity"], 50_000);
    let (status, map) = app
        .get(&format!(
            "/v1/events/{}/seats",
            event["eventId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(map["seats"].as_array().unwrap().len(), 40_000);
    assert_eq!(map["sections"][2]["available"], 10_000);
}

async fn unknown_and_malformed_event_ids_are_404(backend: Backend) {
    let app = TestApp::start(backend).await;
    for path in [
        "/v1/events/0190d2d4-0000-7000-8000-000000000000",
        "/v1/events/not-a-uuid",
        "/v1/events/0190d2d4-0000-7000-8000-000000000000/seats",
    ] {
        let (status, problem) = app.get(path).await;
        assert_eq!(status, 404, "{path}: {problem}");
    }
    // Not even a string: a malformed URL.
    let (status, problem) = app.get("/v1/events/%00%ff/seats").await;
    assert_eq!(status, 400, "{problem}");
}

/// Event pages, seat maps and search answers carry an ETag and a short Cache-Control, and a
/// matching If-None-Match gets 304 with no body; a change gives a new ETag.
#[tokio::test]
async fn public_reads_are_cacheable_and_revalidate() {
    let app = crate::common::TestApp::start(crate::common::Backend::Sqlite).await;
    let event = app.event(&crate::common::eras_tour()).await;
    for (path, max_age) in [
        (format!("/v1/events/{event}"), "max-age=5"),
        (format!("/v1/events/{event}/seats"), "max-age=1"),
        (format!("/v1/events/{event}/listings"), "max-age=1"),
        ("/v1/events?q=eras".to_owned(), "max-age=5"),
    ] {
        let res = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let etag = res
            .headers()
            .get("etag")
            .unwrap_or_else(|| panic!("{path}: no ETag"))
            .to_str()
            .unwrap()
            .to_owned();
        let cc = res.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(
            cc.contains("public") && cc.contains(max_age),
            "{path}: {cc}"
        );
        assert!(cc.contains("stale-while-revalidate"), "{path}: {cc}");
        let again = app
            .http
            .get(app.url(&path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
        assert!(again.bytes().await.unwrap().is_empty());
        let other = app
            .http
            .get(app.url(&path))
            .header("if-none-match", "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 200, "{path}");
    }
    // A hold changes the seat map, and so its ETag.
    let seats = format!("/v1/events/{event}/seats");
    let before = app
        .http
        .get(app.url(&seats))
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .clone();
    let alice = app.token("alice", &[boxoffice_api::auth::Role::Customer]);
    let (status, _) = app
        .post(
            "/v1/attempt",
            &alice,
            &serde_json::json!({"eventId": event, "seatIds": ["1-A-1"]}),
        )
        .await;
    assert_eq!(status, 201);
    let after = app
        .http
        .get(app.url(&seats))
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .clone();
    assert_ne!(before, after);
    // Private and write routes are never marked cacheable.
    let res = app
        .http
        .get(app.url("/v1/tickets"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("etag").is_none());
}
