//! Tickets people carry, over HTTP on every backend: QR codes of the token for the owner only,
//! and tokens that expire after the event.

use boxoffice_api::auth::Role;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, eras_tour, status_json};

crate::on_every_backend!(
    qr_codes_for_the_owner_only,
    tokens_expire_after_the_event,
    transfers_over_http,
    revocations_for_scanners,
);

fn customer(app: &TestApp, name: &str) -> String {
    app.token(name, &[Role::Customer])
}

/// Holds and pays for `seats`; returns the booking id and its tickets.
pub async fn buy(app: &TestApp, token: &str, event: &str, seats: &[&str]) -> (String, Vec<Value>) {
    let (status, held) = app
        .post(
            "/v1/attempt",
            token,
            &json!({"eventId": event, "seatIds": seats}),
        )
        .await;
    assert_eq!(status, 201, "{held}");
    let booking = held["bookingId"].as_str().unwrap().to_owned();
    let res = app
        .http
        .post(app.url("/v1/commit"))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("buy-{booking}"))
        .json(&json!({"bookingId": booking, "paymentMethod": "pm_card_visa"}))
        .send()
        .await
        .unwrap();
    let (status, paid) = status_json(res).await;
    assert_eq!(status, 200, "{paid}");
    (booking, paid["tickets"].as_array().unwrap().clone())
}

/// A GET's status, headers and raw body.
async fn fetch(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = app.http.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Asserts a problem document with `status` and `code`.
fn assert_problem(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    want: u16,
    code: &str,
) {
    assert_eq!(status, want, "{}", String::from_utf8_lossy(body));
    assert_eq!(header(headers, "content-type"), "application/problem+json");
    let p: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(p["code"], code, "{p}");
}

/// The single QR code in a greyscale PNG, decoded; and the image's side in pixels.
fn decode_png(bytes: &[u8]) -> (u32, String) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.width, info.height, "square");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code");
    (info.width, grids[0].decode().unwrap().1)
}

async fn qr_codes_for_the_owner_only(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let bob = customer(&app, "bob");
    let (booking, tickets) = buy(&app, &alice, &event, &["1-A-1"]).await;
    let ticket = tickets[0]["ticketId"].as_str().unwrap();
    let token = tickets[0]["token"].as_str().unwrap();

    // SVG: a standalone document, private to the owner's browser.
    let (status, h, body) =
        fetch(&app, &format!("/v1/tickets/{ticket}/qr.svg"), Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "image/svg+xml");
    assert!(header(&h, "cache-control").starts_with("private"), "{h:?}");
    let svg = String::from_utf8(body).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));

    // PNG: real PNG bytes whose QR code reads back as the ticket's token.
    let (status, h, body) =
        fetch(&app, &format!("/v1/tickets/{ticket}/qr.png"), Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "image/png");
    assert!(header(&h, "cache-control").starts_with("private"), "{h:?}");
    assert_eq!(&body[..8], b"\x89PNG\r\n\x1a\n");
    let (side, decoded) = decode_png(&body);
    assert!((200..=2000).contains(&side), "{side} pixels");
    assert_eq!(decoded, token);

    // Anyone else's ticket, an unknown or malformed id: 404; no token: 401.
    for (path, who) in [
        (format!("/v1/tickets/{ticket}/qr.svg"), Some(bob.as_str())),
        (format!("/v1/tickets/{ticket}/qr.png"), Some(bob.as_str())),
        (
            format!("/v1/tickets/{booking}/qr.png"),
            Some(alice.as_str()),
        ),
        (
            "/v1/tickets/not-a-ticket/qr.svg".to_owned(),
            Some(alice.as_str()),
        ),
    ] {
        let (status, h, body) = fetch(&app, &path, who).await;
        assert_problem(status, &h, &body, 404, "not-found");
    }
    let (status, h, body) = fetch(&app, &format!("/v1/tickets/{ticket}/qr.png"), None).await;
    assert_problem(status, &h, &body, 401, "unauthorized");

    // A refunded ticket's code admits no one: it is not shown any more.
    let res = app
        .http
        .delete(app.url(&format!("/v1/booking/{booking}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let (status, h, body) =
        fetch(&app, &format!("/v1/tickets/{ticket}/qr.svg"), Some(&alice)).await;
    assert_problem(status, &h, &body, 410, "ticket-revoked");

    // Both routes are in the OpenAPI document.
    let (_, doc) = app.get("/openapi.json").await;
    let png = &doc["paths"]["/v1/tickets/{ticketId}/qr.png"]["get"];
    assert!(
        png["responses"]["200"]["content"]["image/png"].is_object(),
        "{png}"
    );
    let svg = &doc["paths"]["/v1/tickets/{ticketId}/qr.svg"]["get"];
    assert!(
        svg["responses"]["200"]["content"]["image/svg+xml"].is_object(),
        "{svg}"
    );
}

async fn tokens_expire_after_the_event(backend: Backend) {
    use base64::Engine;
    let app = TestApp::start(backend).await;
    let spec = eras_tour();
    let starts = time::OffsetDateTime::parse(
        spec["startsAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let event = app.event(&spec).await;
    let (_, tickets) = buy(&app, &customer(&app, "alice"), &event, &["1-B-1"]).await;
    let token = tickets[0]["token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"],
        (starts + time::Duration::days(1)).unix_timestamp(),
        "{claims}"
    );
    assert!(claims["iat"].as_i64().unwrap() < claims["exp"].as_i64().unwrap());
}

async fn transfers_over_http(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let (alice, bob, carol) = (
        customer(&app, "alice"),
        customer(&app, "bob"),
        customer(&app, "carol"),
    );
    let (booking, tickets) = buy(&app, &alice, &event, &["1-C-1"]).await;
    let ticket = tickets[0]["ticketId"].as_str().unwrap();
    let path = format!("/v1/tickets/{ticket}/transfer");

    // Refusals: someone else's ticket, to yourself, bad bodies.
    let (status, p) = app.post(&path, &bob, &json!({"toCustomer": "carol"})).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (404, Some("not-found")),
        "{p}"
    );
    let (status, p) = app
        .post(&path, &alice, &json!({"toCustomer": "alice"}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("transfer-to-self")),
        "{p}"
    );
    let (status, _) = app.post(&path, &alice, &json!({"toCustomer": ""})).await;
    assert_eq!(status, 400);
    let (status, _) = app.post(&path, &alice, &json!({"to": "bob"})).await;
    assert_eq!(status, 400);
    let (status, _) = app
        .post(
            "/v1/tickets/nope/transfer",
            &alice,
            &json!({"toCustomer": "bob"}),
        )
        .await;
    assert_eq!(status, 404);

    let (status, offer) = app.post(&path, &alice, &json!({"toCustomer": "bob"})).await;
    assert_eq!(status, 201, "{offer}");
    assert_eq!(offer["status"], "PENDING");
    assert_eq!(offer["ticketId"], ticket);
    assert_eq!(offer["eventId"], event.as_str());
    assert_eq!(offer["fromCustomer"], "alice");
    assert_eq!(offer["toCustomer"], "bob");
    assert!(offer["createdAt"].is_string());
    let transfer = offer["transferId"].as_str().unwrap();
    let (status, p) = app
        .post(&path, &alice, &json!({"toCustomer": "carol"}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("transfer-pending")),
        "{p}"
    );
    // Both sides see it.
    for who in [&alice, &bob] {
        let (status, list) = app.get_as("/v1/transfers", who).await;
        assert_eq!(status, 200);
        assert_eq!(list["transfers"][0]["transferId"], transfer, "{list}");
    }
    let (_, list) = app.get_as("/v1/transfers", &carol).await;
    assert_eq!(list["transfers"], json!([]));

    // Only the recipient accepts; only the sender cancels.
    let accept = format!("/v1/transfers/{transfer}/accept");
    let (status, _) = app.post(&accept, &carol, &json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = app.post(&accept, &alice, &json!({})).await;
    assert_eq!(status, 404);
    let res = app
        .http
        .delete(app.url(&format!("/v1/transfers/{transfer}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(res).await.0, 404);

    let (status, done) = app.post(&accept, &bob, &json!({})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["transfer"]["status"], "ACCEPTED");
    let new = done["ticket"]["ticketId"].as_str().unwrap();
    assert_eq!(done["transfer"]["newTicketId"], new);
    assert_eq!(done["ticket"]["replaces"], ticket);
    assert_eq!(done["ticket"]["status"], "VALID");
    assert_eq!(done["ticket"]["seatId"], "1-C-1");
    assert_ne!(done["ticket"]["token"], tickets[0]["token"]);
    // The sender's booking no longer shows the ticket's barcode: only the old, dead one.
    let (_, sent) = app.get_as(&format!("/v1/booking/{booking}"), &alice).await;
    let shown: Vec<&str> = sent["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticketId"].as_str().unwrap())
        .collect();
    assert_eq!(shown, vec![ticket], "{sent}");
    assert_eq!(sent["tickets"][0]["status"], "REISSUED");
    let (status, p) = app.post(&accept, &bob, &json!({})).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("transfer-not-pending")),
        "{p}"
    );
    assert_eq!(p["transferStatus"], "ACCEPTED");
    let res = app
        .http
        .delete(app.url(&format!("/v1/transfers/{transfer}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let (status, p) = status_json(res).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("transfer-not-pending")),
        "{p}"
    );

    // Bob's tickets show the new one, with a QR code; alice's is REISSUED and its code gone.
    let (_, mine) = app.get_as("/v1/tickets", &bob).await;
    assert_eq!(mine["tickets"][0]["ticketId"], new, "{mine}");
    let (status, _, _) = fetch(&app, &format!("/v1/tickets/{new}/qr.svg"), Some(&bob)).await;
    assert_eq!(status, 200);
    let (_, hers) = app.get_as("/v1/tickets", &alice).await;
    assert_eq!(hers["tickets"][0]["status"], "REISSUED", "{hers}");
    let (status, h, body) =
        fetch(&app, &format!("/v1/tickets/{ticket}/qr.png"), Some(&alice)).await;
    assert_problem(status, &h, &body, 410, "ticket-revoked");
    let (status, p) = app
        .post(&path, &alice, &json!({"toCustomer": "carol"}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("ticket-not-transferable")),
        "{p}"
    );
    assert_eq!(p["ticketStatus"], "REISSUED");
    // The sender cannot refund what they gave away.
    let res = app
        .http
        .delete(app.url(&format!("/v1/booking/{booking}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(res).await.0, 409);

    // A second ticket: offered, cancelled, then lapsed with the event.
    let (_, tickets) = buy(&app, &alice, &event, &["1-C-2"]).await;
    let path = format!(
        "/v1/tickets/{}/transfer",
        tickets[0]["ticketId"].as_str().unwrap()
    );
    let (_, offer) = app.post(&path, &alice, &json!({"toCustomer": "bob"})).await;
    let id = offer["transferId"].as_str().unwrap();
    let res = app
        .http
        .delete(app.url(&format!("/v1/transfers/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let (status, cancelled) = status_json(res).await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("CANCELLED"))
    );
    let (status, p) = app
        .post(&format!("/v1/transfers/{id}/accept"), &bob, &json!({}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("transfer-not-pending"))
    );
    let (_, offer) = app.post(&path, &alice, &json!({"toCustomer": "bob"})).await;
    let id = offer["transferId"].as_str().unwrap();
    app.clock.advance(time::Duration::days(366));
    let (_, list) = app.get_as("/v1/transfers", &bob).await;
    assert_eq!(list["transfers"][0]["transferId"], id);
    assert_eq!(list["transfers"][0]["status"], "EXPIRED", "{list}");
    let (status, p) = app
        .post(&format!("/v1/transfers/{id}/accept"), &bob, &json!({}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("event-started")),
        "{p}"
    );

    // Every route is documented.
    let (_, doc) = app.get("/openapi.json").await;
    for (route, method) in [
        ("/v1/tickets/{ticketId}/transfer", "post"),
        ("/v1/transfers/{transferId}/accept", "post"),
        ("/v1/transfers/{transferId}", "delete"),
        ("/v1/transfers", "get"),
        ("/v1/events/{eventId}/revocations", "get"),
    ] {
        assert!(doc["paths"][route][method].is_object(), "{route} {method}");
    }
}

async fn revocations_for_scanners(backend: Backend) {
    let app = TestApp::start(backend).await;
    let event = app.event(&eras_tour()).await;
    let alice = customer(&app, "alice");
    let scanner = app.token("door", &[Role::Scanner]);
    let path = format!("/v1/events/{event}/revocations");
    let (status, _) = app.get_as(&path, &alice).await;
    assert_eq!(status, 403, "customers do not read revocations");
    let (status, _) = app
        .get_as(&format!("/v1/events/{}/revocations", uuid_like()), &scanner)
        .await;
    assert_eq!(status, 404);
    let (status, p) = app.get_as(&format!("{path}?since=garbage"), &scanner).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (400, Some("invalid-cursor")),
        "{p}"
    );
    let (status, _) = app.get_as(&format!("{path}?limit=0"), &scanner).await;
    assert_eq!(status, 400);
    let (status, empty) = app.get_as(&path, &scanner).await;
    assert_eq!(status, 200);
    assert_eq!(empty["revocations"], json!([]));
    assert_eq!(empty["hasMore"], false);

    // One ticket given away, one refunded.
    let (_, given) = buy(&app, &alice, &event, &["1-D-1"]).await;
    let (_, offer) = app
        .post(
            &format!(
                "/v1/tickets/{}/transfer",
                given[0]["ticketId"].as_str().unwrap()
            ),
            &alice,
            &json!({"toCustomer": "bob"}),
        )
        .await;
    let bob = customer(&app, "bob");
    let (status, _) = app
        .post(
            &format!(
                "/v1/transfers/{}/accept",
                offer["transferId"].as_str().unwrap()
            ),
            &bob,
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (refunded, tickets) = buy(&app, &alice, &event, &["1-D-2"]).await;
    let res = app
        .http
        .delete(app.url(&format!("/v1/booking/{refunded}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());

    let (status, first) = app.get_as(&format!("{path}?limit=1"), &scanner).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["revocations"][0]["ticketId"], given[0]["ticketId"]);
    assert_eq!(first["revocations"][0]["status"], "REISSUED");
    assert!(first["revocations"][0]["at"].is_string());
    assert_eq!(first["hasMore"], true);
    let cursor = first["nextCursor"].as_str().unwrap();
    let (_, second) = app
        .get_as(&format!("{path}?limit=1&since={cursor}"), &scanner)
        .await;
    assert_eq!(second["revocations"][0]["ticketId"], tickets[0]["ticketId"]);
    assert_eq!(second["revocations"][0]["status"], "VOID");
    // A poll with the last cursor never misses anything; recent ones may come again.
    let cursor = second["nextCursor"].as_str().unwrap();
    let (_, again) = app
        .get_as(&format!("{path}?since={cursor}"), &scanner)
        .await;
    assert!(
        again["revocations"].as_array().unwrap().len() <= 2,
        "{again}"
    );
    assert!(again["nextCursor"].is_string());
}

fn uuid_like() -> String {
    "0190f0f0-0000-7000-8000-000000000000".to_owned()
}
