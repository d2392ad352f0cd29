//! The storefront served by the binary, over a loopback socket: pages carry their accessible
//! names, search works as a plain GET form, assets have hashed names, immutable caching and
//! compression, the JSON API keeps its problem documents, and demo sign-in exists only on an
//! embedded node listening on loopback without an identity provider.

mod common;

use common::{Server, boxoffice_ok};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn token(data_dir: &std::path::Path, sub: &str, role: &str) -> String {
    let out = boxoffice_ok(
        &["token", "--sub", sub, "--role", role],
        &[("BOXOFFICE_DATA_DIR", data_dir.to_str().expect("utf-8"))],
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// `application/x-www-form-urlencoded`, as a browser sends a form.
fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn create_event(base: &str, token: &str) -> String {
    let res = client()
        .post(format!("{base}/v1/events"))
        .bearer_auth(token)
        .json(&json!({
            "name": "Taylor Swift | The Eras Tour", "performers": ["Taylor Swift"],
            "category": "concert", "startsAt": "2031-06-01T19:30:00Z", "currency": "USD",
            "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                      "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
            "sections": [{"name": "Floor", "rows": 3, "seatsPerRow": 4, "priceCents": 25000},
                         {"name": "Lawn", "capacity": 10, "priceCents": 5000}]
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    body["eventId"].as_str().expect("id").to_owned()
}

async fn html(base: &str, path: &str) -> (u16, String) {
    let res = client()
        .get(format!("{base}{path}"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("get");
    let status = res.status().as_u16();
    (status, res.text().await.expect("text"))
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_assets_and_search_without_javascript() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let base = server.base.clone();
    let org = token(dir.path(), "olivia", "organizer");
    let id = create_event(&base, &org).await;

    // The search page: a labelled search box in a plain GET form.
    let (status, page) = html(&base, "/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"<label for="q">Search events</label>"#),
        "{page}"
    );
    assert!(page.contains(r#"<form class="search-form" method="get" action="/""#));

    // Search without JavaScript, with a typo, finds the event (the index follows within a
    // second).
    let mut found = false;
    for _ in 0..50 {
        let (status, page) = html(&base, "/?q=tayler+swfit").await;
        assert_eq!(status, 200);
        if page.contains(&format!(r#"href="/events/{id}""#)) {
            found = true;
            assert!(page.contains("tickets left"), "availability badge");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(found, "no-JS search finds the event");
    let (status, page) = html(
        &base,
        "/?q=eras&category=concert&min=100&max=300&available=1",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Concert</strong> (1)"),
        "facet counts: {page}"
    );

    // Bad input is a 400 page naming the problem, never a 500.
    for bad in [
        "/?min=abc",
        "/?from=yesterday",
        "/?cursor=garbage",
        "/?sort=sideways",
    ] {
        let (status, page) = html(&base, bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(page.contains(r#"role="alert""#), "{bad}");
    }

    // The event page: sections, seat map hook, the one "Hold seats" button.
    let (status, page) = html(&base, &format!("/events/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(page.matches(">Hold seats</button>").count(), 1);
    assert!(page.contains(&format!(r#"data-src="/events/{id}/seatmap.json""#)));
    let (status, _) = html(&base, "/events/not-an-event").await;
    assert_eq!(status, 404);

    // The compact seat map: one status letter per seat, row by row.
    let map: Value = client()
        .get(format!("{base}/events/{id}/seatmap.json"))
        .send()
        .await
        .expect("seatmap")
        .json()
        .await
        .expect("json");
    assert_eq!(map["sections"][0]["rows"][0], json!(["A", 1, "OOOO"]));
    assert_eq!(map["sections"][1]["kind"], "generalAdmission");

    // Assets: hashed names, immutable caching, gzip and brotli.
    let css = page
        .split('"')
        .find(|s| s.starts_with("/assets/app.") && s.ends_with(".css"))
        .expect("stylesheet link")
        .to_owned();
    assert!(
        css.len() > "/assets/app..css".len() + 8,
        "hashed name: {css}"
    );
    for (enc, expect) in [
        ("br", Some("br")),
        ("gzip", Some("gzip")),
        ("identity", None),
    ] {
        let res = client()
            .get(format!("{base}{css}"))
            .header("accept-encoding", enc)
            .send()
            .await
            .expect("asset");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/css")
        );
        assert_eq!(
            res.headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            expect,
            "{enc}"
        );
    }
    let (status, _) = html(&base, "/assets/app.0000000000.css").await;
    assert_eq!(status, 404, "an old or made-up hash is not served");

    // Pages are compressed too, and carry a strict content security policy.
    let res = client()
        .get(format!("{base}/"))
        .header("accept-encoding", "br")
        .send()
        .await
        .expect("page");
    assert_eq!(res.headers()["content-encoding"], "br");
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // Browser paths get an HTML 404; the JSON API keeps problem+json.
    let (status, page) = html(&base, "/no/such/page").await;
    assert_eq!(status, 404);
    assert!(page.contains("Page not found"));
    let res = client()
        .get(format!("{base}/v1/no-such-route"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("api 404");
    assert_eq!(res.status(), 404);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    server.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_sign_in_only_on_loopback_and_forms_need_their_csrf_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let base = server.base.clone();
    let (_, page) = html(&base, "/signin").await;
    assert!(page.contains("Sign in as anyone (demo)"));
    let res = client()
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("mode", "demo"),
            ("name", "alice"),
            ("role", "customer"),
            ("next", "/tickets"),
        ]))
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/tickets");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("bo_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    // A bad name is a 400 page.
    let res = client()
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("mode", "demo"), ("name", "a b<script>")]))
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), 400);
    // Signed in: my tickets shows; a form post without its CSRF token is refused.
    let res = client()
        .get(format!("{base}/tickets"))
        .header("cookie", &session)
        .send()
        .await
        .expect("tickets");
    assert_eq!(res.status(), 200);
    let org = token(dir.path(), "olivia", "organizer");
    let id = create_event(&base, &org).await;
    let res = client()
        .post(format!("{base}/events/{id}/hold"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("section", "Lawn"), ("quantity", "2")]))
        .send()
        .await
        .expect("hold");
    assert_eq!(res.status(), 403);
    // Posted from another site: refused even with a token-shaped field.
    let res = client()
        .post(format!("{base}/events/{id}/hold"))
        .header("cookie", &session)
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("section", "Lawn"),
            ("quantity", "2"),
            ("csrf", "x"),
        ]))
        .send()
        .await
        .expect("hold");
    assert_eq!(res.status(), 403);
    // Page scripts may read the API with the cookie, never change anything with it.
    let res = client()
        .get(format!("{base}/v1/tickets"))
        .header("cookie", &session)
        .send()
        .await
        .expect("tickets api");
    assert_eq!(res.status(), 200);
    let res = client()
        .post(format!("{base}/v1/attempt"))
        .header("cookie", &session)
        .json(&json!({"eventId": id, "section": "Lawn", "quantity": 1}))
        .send()
        .await
        .expect("attempt");
    assert_eq!(res.status(), 401);
    server.terminate();

    // Beyond loopback: no demo sign-in, and posting the demo form is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("BOXOFFICE_LISTEN", "0.0.0.0:0")]);
    let base = server.base.replace("0.0.0.0", "127.0.0.1");
    let (_, page) = html(&base, "/signin").await;
    assert!(!page.contains("Sign in as anyone"), "{page}");
    assert!(page.contains("Access token"));
    let res = client()
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("mode", "demo"),
            ("name", "mallory"),
            ("role", "organizer"),
        ]))
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());
    // A real token is accepted through the paste box, and the cookie is Secure there.
    let t = token(dir.path(), "bob", "customer");
    let res = client()
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("mode", "token"), ("token", t.as_str())]))
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    server.terminate();

    // With an identity provider configured: no demo sign-in even on loopback.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &[("BOXOFFICE_JWKS_URL", "http://127.0.0.1:9/jwks.json")],
    );
    let (_, page) = html(&server.base, "/signin").await;
    assert!(!page.contains("Sign in as anyone"));
    assert!(page.contains("identity provider"));
    server.terminate();
}

/// Signs in through the demo form; returns the session cookie (`bo_session=…`).
async fn sign_in(base: &str, name: &str) -> String {
    let res = client()
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("mode", "demo"),
            ("name", name),
            ("role", "customer"),
        ]))
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), 303);
    res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// A page as the signed-in person, and the first value of `name="<field>" value="…"` on it.
async fn page_as(base: &str, path: &str, cookie: &str) -> (u16, String) {
    let res = client()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("page");
    (res.status().as_u16(), res.text().await.expect("text"))
}

fn field(page: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = page.find(&marker).expect(name) + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

async fn post_as(
    base: &str,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(fields))
        .send()
        .await
        .expect("post")
}

#[tokio::test(flavor = "multi_thread")]
async fn buying_without_javascript_taken_declined_and_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let base = server.base.clone();
    let org = token(dir.path(), "olivia", "organizer");
    let id = create_event(&base, &org).await;
    let alice = sign_in(&base, "alice").await;
    let bob = sign_in(&base, "bob").await;

    // Alice holds two seats through the event page's form.
    let (_, page) = page_as(&base, &format!("/events/{id}"), &alice).await;
    let csrf = field(&page, "csrf");
    let res = post_as(
        &base,
        &format!("/events/{id}/hold"),
        &alice,
        &[("csrf", &csrf), ("seat", "1-A-1"), ("seat", "1-A-2")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let checkout = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(checkout.starts_with("/checkout/"), "{checkout}");

    // Bob wants one of them: taken, 409, a page that says so.
    let (_, page) = page_as(&base, &format!("/events/{id}"), &bob).await;
    let bob_csrf = field(&page, "csrf");
    let res = post_as(
        &base,
        &format!("/events/{id}/hold"),
        &bob,
        &[("csrf", &bob_csrf), ("seat", "1-A-2")],
    )
    .await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("just taken"));
    // Bad quantities are 400 pages, not 500s.
    let res = post_as(
        &base,
        &format!("/events/{id}/hold"),
        &bob,
        &[
            ("csrf", &bob_csrf),
            ("section", "Lawn"),
            ("quantity", "many"),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = post_as(
        &base,
        &format!("/events/{id}/hold"),
        &bob,
        &[
            ("csrf", &bob_csrf),
            ("section", "Nowhere"),
            ("quantity", "2"),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);

    // The checkout: a timer, the payment method, one idempotency key per checkout.
    let (status, page) = page_as(&base, &checkout, &alice).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"role="timer""#));
    assert!(page.contains(r#"<label for="payment-method">Payment method</label>"#));
    assert!(page.contains(r#">Pay</button>"#));
    let key = field(&page, "idempotencyKey");
    let pay = format!("{checkout}/pay");
    // Declined: 402, the seats still held, a new key offered for the next attempt.
    let res = post_as(
        &base,
        &pay,
        &alice,
        &[
            ("csrf", &csrf),
            ("idempotencyKey", &key),
            ("paymentMethod", "pm_card_chargeDeclined"),
        ],
    )
    .await;
    assert_eq!(res.status(), 402);
    let page = res.text().await.unwrap();
    assert!(page.contains("Payment declined"));
    let retry_key = field(&page, "idempotencyKey");
    assert_ne!(retry_key, key);
    // Paid twice with the same key (a double submit): one booking, confirmed once.
    for _ in 0..2 {
        let res = post_as(
            &base,
            &pay,
            &alice,
            &[
                ("csrf", &csrf),
                ("idempotencyKey", &retry_key),
                ("paymentMethod", "pm_card_visa"),
            ],
        )
        .await;
        assert_eq!(res.status(), 303);
    }
    let booking = checkout.trim_start_matches("/checkout/");
    let (status, page) = page_as(&base, &format!("/bookings/{booking}"), &alice).await;
    assert_eq!(status, 200);
    assert_eq!(page.matches("QR code for ticket ").count(), 2);
    // Bob's booking page is none of his business.
    let (status, _) = page_as(&base, &format!("/bookings/{booking}"), &bob).await;
    assert_eq!(status, 404);

    // A released hold: its checkout answers 410 with the way back.
    let res = post_as(
        &base,
        &format!("/events/{id}/hold"),
        &bob,
        &[("csrf", &bob_csrf), ("section", "Lawn"), ("quantity", "2")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let bob_checkout = res.headers()["location"].to_str().unwrap().to_owned();
    let res = post_as(
        &base,
        &format!("{bob_checkout}/release"),
        &bob,
        &[("csrf", &bob_csrf)],
    )
    .await;
    assert_eq!(res.status(), 303);
    let (status, page) = page_as(&base, &bob_checkout, &bob).await;
    assert_eq!(status, 410);
    assert!(page.contains("Choose seats again"));
    let out = boxoffice_ok(
        &["verify"],
        &[("BOXOFFICE_DATA_DIR", dir.path().to_str().unwrap())],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
    server.terminate();
}
