//! Tickets people carry, over HTTP on every backend: QR codes of the token for the owner only,
//! and tokens that expire after the event.

use boxoffice_api::auth::Role;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, eras_tour, status_json};

crate::on_every_backend!(qr_codes_for_the_owner_only, tokens_expire_after_the_event);

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
