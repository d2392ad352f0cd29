//! Races over real HTTP against real server processes, on both backends, each followed by
//! `boxoffice verify` (no seat sold twice, money and tickets agree, limits held). Exactly the
//! right number is sold, every time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use boxoffice_api::auth::{Role, Secret, mint_hs256};
use boxoffice_store_postgres::testing::TestDatabase;
use common::{SECRET, Server, boxoffice};
use futures_util::StreamExt;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One or more server processes over one store.
struct Cluster {
    nodes: Vec<Server>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    _db: Option<TestDatabase>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(backend: Backend, nodes: usize, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = match backend {
            Backend::Postgres => Some(TestDatabase::create().await),
            Backend::Sqlite => None,
        };
        let mut env: Vec<(String, String)> = vec![
            ("BOXOFFICE_JWT_SECRET".into(), SECRET.into()),
            ("BOXOFFICE_DB_POOL_SIZE".into(), "12".into()),
        ];
        if let Some(db) = &db {
            env.push(("BOXOFFICE_DATABASE_URL".into(), db.url.clone()));
        }
        for (k, v) in extra {
            env.push(((*k).into(), (*v).into()));
        }
        let mut cluster = Self {
            nodes: Vec::new(),
            env,
            dir,
            _db: db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
        };
        for _ in 0..nodes {
            cluster.add_node();
        }
        cluster
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn add_node(&mut self) {
        // Every node has its own data directory (search index, generated files), as in
        // a real deployment; SQLite nodes share the one database in the first.
        let data = if self._db.is_some() {
            self.dir.path().join(format!("node-{}", self.nodes.len()))
        } else {
            self.dir.path().to_owned()
        };
        let env = self.env();
        self.nodes.push(Server::start(&data, &env));
    }

    fn node(&self, i: usize) -> &Server {
        &self.nodes[i % self.nodes.len()]
    }

    fn token(&self, sub: &str, roles: &[Role]) -> String {
        mint_hs256(&Secret::new(SECRET), sub, roles, Duration::from_secs(3600)).expect("token")
    }

    async fn post(&self, node: usize, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.http
                .post(self.node(node).url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    async fn get(&self, node: usize, path: &str, token: &str) -> (u16, Value) {
        self.send(self.http.get(self.node(node).url(path)).bearer_auth(token))
            .await
    }

    async fn delete(&self, node: usize, path: &str, token: &str) -> (u16, Value) {
        self.send(
            self.http
                .delete(self.node(node).url(path))
                .bearer_auth(token),
        )
        .await
    }

    async fn commit(&self, node: usize, token: &str, key: &str, booking: &str) -> (u16, Value) {
        self.send(
            self.http
                .post(self.node(node).url("/v1/commit"))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({"bookingId": booking, "paymentMethod": "pm_card_visa"})),
        )
        .await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        assert!(status < 500, "server error {status}: {body}");
        (status, body)
    }

    async fn event(&self, sections: Value, max_per_customer: u32) -> String {
        let body = json!({
            "name": "Race Night", "category": "concert", "startsAt": "2099-06-01T19:30:00Z",
            "currency": "USD",
            "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                      "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
            "sections": sections,
            "policies": {"maxTicketsPerCustomer": max_per_customer}
        });
        let org = self.token("org", &[Role::Organizer]);
        let (status, e) = self.post(0, "/v1/events", &org, &body).await;
        assert_eq!(status, 201, "{e}");
        e["eventId"].as_str().expect("id").to_owned()
    }

    async fn seat_map(&self, event: &str) -> Value {
        self.send(
            self.http
                .get(self.node(0).url(&format!("/v1/events/{event}/seats"))),
        )
        .await
        .1
    }

    /// A small seated event with one seat held by `who`: (event id, token, booking id).
    async fn one_hold(&self, who: &str, seats: &[&str]) -> (String, String, String) {
        let event = self
            .event(
                json!([{"name": "Floor", "rows": 2, "seatsPerRow": 10, "priceCents": 10000}]),
                8,
            )
            .await;
        let token = self.token(who, &[Role::Customer]);
        let (status, b) = self
            .post(
                0,
                "/v1/attempt",
                &token,
                &json!({"eventId": event, "seatIds": seats}),
            )
            .await;
        assert_eq!(status, 201, "{b}");
        let booking = b["bookingId"].as_str().expect("id").to_owned();
        (event, token, booking)
    }

    /// Polls a booking until it has `status`; returns it.
    async fn wait_for_booking(&self, token: &str, booking: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = self.node(0).url(&format!("/v1/booking/{booking}"));
            let (_, read) = self.send(self.http.get(url).bearer_auth(token)).await;
            if read["status"] == status {
                return read;
            }
            assert!(
                Instant::now() < deadline,
                "booking never became {status}: {read}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `boxoffice verify` against the same store, as a separate process.
    fn verify(&self) {
        let mut env = self.env();
        let dir = self.dir.path().to_str().expect("utf-8").to_owned();
        env.push(("BOXOFFICE_DATA_DIR", &dir));
        let out = boxoffice(&["verify"], &env);
        assert!(
            out.status.success(),
            "boxoffice verify found problems:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() { super::$name(super::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() { super::$name(super::Backend::Postgres).await }
            )*
        }
    };
}

on_every_backend!(
    five_hundred_clients_for_one_hundred_seats,
    thousand_buyers_for_three_hundred_general_admission_places,
    parallel_requests_cannot_beat_the_ticket_limit,
    duplicate_commits_with_one_key_charge_once,
    sigkill_mid_commit_is_repaired_on_restart,
    two_hundred_buyers_for_twenty_listings,
    the_seller_withdraws_while_buyers_commit,
    a_listed_ticket_at_the_door_while_it_sells,
    a_refund_races_a_listing,
    a_transfer_races_a_resale,
    accept_races_cancel_retransfer_and_the_door,
    an_on_sale_rush_through_the_waiting_room,
);

/// Buyers who each want one specific seat: read the map, pick a random open seat, try to
/// hold it and pay; on conflict, look again. Stops when nothing is open or held.
async fn five_hundred_clients_for_one_hundred_seats(backend: Backend) {
    let nodes = if backend == Backend::Postgres { 2 } else { 1 };
    let cluster = Arc::new(Cluster::start(backend, nodes, &[]).await);
    race_for_explicit_seats(cluster, 500).await;
}

async fn race_for_explicit_seats(cluster: Arc<Cluster>, clients: usize) {
    let event = cluster
        .event(
            json!([{"name": "Floor", "rows": 5, "seatsPerRow": 20, "priceCents": 10000}]),
            4,
        )
        .await;
    let bought = Arc::new(AtomicUsize::new(0));
    futures_util::stream::iter(0..clients)
        .for_each_concurrent(250, |i| {
            let cluster = cluster.clone();
            let event = event.clone();
            let bought = bought.clone();
            async move {
                let token = cluster.token(&format!("buyer-{i}"), &[Role::Customer]);
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    assert!(Instant::now() < deadline, "buyer {i} never finished");
                    let map = cluster.seat_map(&event).await;
                    let seats = map["seats"].as_array().expect("seats");
                    let open: Vec<&str> = seats
                        .iter()
                        .filter(|s| s["status"] == "OPEN")
                        .map(|s| s["seatId"].as_str().expect("id"))
                        .collect();
                    if open.is_empty() {
                        if seats.iter().all(|s| s["status"] == "SOLD") {
                            return;
                        }
                        tokio::task::yield_now().await;
                        continue;
                    }
                    let seat = open[rand::random_range(0..open.len())];
                    let (status, b) = cluster
                        .post(
                            i,
                            "/v1/attempt",
                            &token,
                            &json!({"eventId": event, "seatIds": [seat]}),
                        )
                        .await;
                    match status {
                        201 => {
                            let id = b["bookingId"].as_str().expect("id");
                            let (status, paid) =
                                cluster.commit(i, &token, &format!("k-{i}"), id).await;
                            assert_eq!(status, 200, "{paid}");
                            bought.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        409 => continue,
                        other => panic!("unexpected {other}: {b}"),
                    }
                }
            }
        })
        .await;
    assert_eq!(
        bought.load(Ordering::SeqCst),
        100,
        "every seat sold exactly once"
    );
    let map = cluster.seat_map(&event).await;
    assert!(
        map["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .all(|s| s["status"] == "SOLD")
    );
    cluster.verify();
}

/// Buyers who want any one place of a general-admission section.
async fn thousand_buyers_for_three_hundred_general_admission_places(backend: Backend) {
    let nodes = if backend == Backend::Postgres { 2 } else { 1 };
    let cluster = Arc::new(Cluster::start(backend, nodes, &[]).await);
    race_for_general_admission(cluster, 1000).await;
}

async fn race_for_general_admission(cluster: Arc<Cluster>, buyers: usize) {
    let event = cluster
        .event(
            json!([{"name": "Pit", "capacity": 300, "priceCents": 5000}]),
            4,
        )
        .await;
    let bought = Arc::new(AtomicUsize::new(0));
    let sold_out = Arc::new(AtomicUsize::new(0));
    futures_util::stream::iter(0..buyers)
        .for_each_concurrent(250, |i| {
            let cluster = cluster.clone();
            let event = event.clone();
            let (bought, sold_out) = (bought.clone(), sold_out.clone());
            async move {
                let token = cluster.token(&format!("fan-{i}"), &[Role::Customer]);
                let body = json!({"eventId": event, "section": "Pit", "quantity": 1});
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    assert!(Instant::now() < deadline, "fan {i} never finished");
                    let (status, b) = cluster.post(i, "/v1/attempt", &token, &body).await;
                    match (status, b["code"].as_str()) {
                        (201, _) => {
                            let id = b["bookingId"].as_str().expect("id");
                            let (status, paid) =
                                cluster.commit(i, &token, &format!("k-{i}"), id).await;
                            assert_eq!(status, 200, "{paid}");
                            bought.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        (409, Some("not-enough-seats")) => {
                            sold_out.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        (409, Some("seats-contended")) => continue,
                        other => panic!("unexpected {other:?}: {b}"),
                    }
                }
            }
        })
        .await;
    assert_eq!(bought.load(Ordering::SeqCst), 300);
    assert_eq!(sold_out.load(Ordering::SeqCst), buyers - 300);
    let map = cluster.seat_map(&event).await;
    assert_eq!(map["sections"][0]["sold"], 300);
    cluster.verify();
}

/// One customer firing many holds at once, across every node, cannot pass the limit.
async fn parallel_requests_cannot_beat_the_ticket_limit(backend: Backend) {
    let nodes = if backend == Backend::Postgres { 2 } else { 1 };
    let cluster = Arc::new(Cluster::start(backend, nodes, &[]).await);
    let event = cluster
        .event(
            json!([{"name": "Floor", "rows": 4, "seatsPerRow": 10, "priceCents": 10000},
                   {"name": "Lawn", "capacity": 50, "priceCents": 2000}]),
            4,
        )
        .await;
    let token = cluster.token("greedy", &[Role::Customer]);
    let results: Vec<(u16, Value)> = futures_util::future::join_all((0..40).map(|i| {
        let cluster = cluster.clone();
        let token = token.clone();
        let event = event.clone();
        async move {
            let body = if i % 2 == 0 {
                json!({"eventId": event, "seatIds": [format!("1-{}-{}", ["A", "B", "C", "D"][i % 4], i / 4 + 1)]})
            } else {
                json!({"eventId": event, "section": "Lawn", "quantity": 1})
            };
            cluster.post(i, "/v1/attempt", &token, &body).await
        }
    }))
    .await;
    let held: Vec<&Value> = results
        .iter()
        .filter(|r| r.0 == 201)
        .map(|r| &r.1)
        .collect();
    assert_eq!(held.len(), 4, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.0 == 201 || r.1["code"] == "ticket-limit")
    );
    for (i, b) in held.iter().enumerate() {
        let (status, _) = cluster
            .commit(
                i,
                &token,
                &format!("g-{i}"),
                b["bookingId"].as_str().expect("id"),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, more) = cluster
        .post(
            0,
            "/v1/attempt",
            &token,
            &json!({"eventId": event, "section": "Lawn", "quantity": 1}),
        )
        .await;
    assert_eq!((status, more["code"].as_str()), (409, Some("ticket-limit")));
    cluster.verify();
}

/// The same commit sent many times at once, to every node: one charge, one set of tickets.
async fn duplicate_commits_with_one_key_charge_once(backend: Backend) {
    let nodes = if backend == Backend::Postgres { 2 } else { 1 };
    let cluster = Arc::new(Cluster::start(backend, nodes, &[]).await);
    let (_event, token, booking) = cluster.one_hold("clicker", &["1-A-1", "1-A-2"]).await;
    let mut results: Vec<(u16, Value)> = futures_util::future::join_all((0..20).map(|i| {
        let cluster = cluster.clone();
        let token = token.clone();
        let booking = booking.clone();
        async move { cluster.commit(i, &token, "one-click", &booking).await }
    }))
    .await;
    // Whoever got 409 retries until the outcome is there to replay.
    for (i, r) in results.iter_mut().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while r.0 == 409 {
            assert_eq!(r.1["code"], "request-in-progress", "{}", r.1);
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
            *r = cluster.commit(i, &token, "one-click", &booking).await;
        }
    }
    assert!(
        results.iter().all(|r| r.0 == 200 && r.1 == results[0].1),
        "{results:?}"
    );
    assert_eq!(
        results[0].1["tickets"].as_array().expect("tickets").len(),
        2
    );
    // A different key for the same, now paid, booking is refused, not charged.
    let (status, p) = cluster.commit(0, &token, "second-click", &booking).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("already-confirmed"))
    );
    cluster.verify();
}

/// The server dies (SIGKILL) while a payment is in flight at the provider; after a restart
/// the reconciler asks the provider, finds the authorization, confirms and captures.
async fn sigkill_mid_commit_is_repaired_on_restart(backend: Backend) {
    let mut cluster = Cluster::start(
        backend,
        1,
        &[
            ("BOXOFFICE_SANDBOX_HANG", "60s"),
            ("BOXOFFICE_PROVIDER_TIMEOUT", "30s"),
            ("BOXOFFICE_RECONCILE_AFTER", "31s"),
        ],
    )
    .await;
    let (_event, token, booking) = cluster.one_hold("unlucky", &["1-A-1"]).await;
    let url = cluster.node(0).url("/v1/commit");
    let http = cluster.http.clone();
    let (t, bk) = (token.clone(), booking.clone());
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(&t)
            .header("Idempotency-Key", "doomed")
            .json(&json!({"bookingId": bk, "paymentMethod": "pm_card_timeout"}))
            .send()
            .await
    });
    // Wait until the commit is really in flight: the booking is PENDING, and the sandbox has
    // recorded the authorization (it does so right after, then hangs for a minute before it
    // answers; a kill before the record is a payment that never reached the provider, a
    // different test). The ledger is read through the sandbox itself, by the forwarded key.
    cluster.wait_for_booking(&token, &booking, "PENDING").await;
    let sandbox = match &cluster._db {
        Some(db) => boxoffice_payments::Sandbox::postgres(&db.url).await,
        None => {
            boxoffice_payments::Sandbox::sqlite(cluster.dir.path().join("psp-sandbox.db")).await
        }
    }
    .expect("the sandbox's ledger");
    let key = boxoffice_api::booking::provider_key("unlucky", "doomed");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        use boxoffice_domain::payments::{PaymentProvider, PaymentState};
        match sandbox.lookup(&key).await.expect("lookup") {
            PaymentState::Unknown => {
                assert!(
                    Instant::now() < deadline,
                    "the sandbox never recorded the payment"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => break,
        }
    }
    drop(sandbox);
    cluster.nodes.pop().expect("node").kill_hard();
    assert!(
        in_flight.await.expect("task").is_err(),
        "the connection died with the server"
    );

    // Restart with a short reconciliation delay; the process that made the request is gone.
    cluster.env.retain(|(k, _)| {
        !k.starts_with("BOXOFFICE_RECONCILE") && !k.starts_with("BOXOFFICE_PROVIDER")
    });
    cluster
        .env
        .push(("BOXOFFICE_PROVIDER_TIMEOUT".into(), "1s".into()));
    cluster
        .env
        .push(("BOXOFFICE_RECONCILE_AFTER".into(), "2s".into()));
    cluster
        .env
        .push(("BOXOFFICE_RECONCILE_INTERVAL".into(), "200ms".into()));
    cluster.add_node();
    let confirmed = cluster
        .wait_for_booking(&token, &booking, "CONFIRMED")
        .await;
    assert_eq!(confirmed["tickets"].as_array().expect("tickets").len(), 1);
    // The key now replays the settled outcome.
    let (status, replay) = cluster
        .send(
            cluster
                .http
                .post(cluster.node(0).url("/v1/commit"))
                .bearer_auth(&token)
                .header("Idempotency-Key", "doomed")
                .json(&json!({"bookingId": booking, "paymentMethod": "pm_card_timeout"})),
        )
        .await;
    assert_eq!(
        (status, replay["status"].as_str()),
        (200, Some("CONFIRMED"))
    );
    // Wait for the capture to be recorded, then check everything.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut env = cluster.env();
        let dir = cluster.dir.path().to_str().expect("utf-8").to_owned();
        env.push(("BOXOFFICE_DATA_DIR", &dir));
        if boxoffice(&["verify"], &env).status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "invariants never held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.verify();
}

/// `boxoffice verify` is only worth something if it fails: break the data behind the
/// service's back and it must say what is wrong and exit non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_reports_broken_invariants() {
    let cluster = Cluster::start(Backend::Postgres, 1, &[]).await;
    let (_event, token, booking) = cluster.one_hold("victim", &["1-A-1"]).await;
    assert_eq!(cluster.commit(0, &token, "k", &booking).await.0, 200);
    cluster.verify();

    let url = cluster._db.as_ref().expect("postgres").url.clone();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(
            "UPDATE payments SET status = 'AUTHORIZED';
             UPDATE customer_event_tickets SET tickets = tickets + 3;
             UPDATE tickets SET status = 'VOID';",
        )
        .await
        .expect("corrupt");
    let mut env = cluster.env();
    let dir = cluster.dir.path().to_str().expect("utf-8").to_owned();
    env.push(("BOXOFFICE_DATA_DIR", &dir));
    let out = boxoffice(&["verify"], &env);
    assert!(
        !out.status.success(),
        "verify must fail on a broken database"
    );
    let report = String::from_utf8_lossy(&out.stdout);
    for rule in [
        "confirmed-booking-without-captured-payment",
        "customer-limit-counter",
        "sold-seat-ticket-count",
        "confirmed-booking-ticket-count",
    ] {
        assert!(report.contains(rule), "{rule} missing from:\n{report}");
    }
}

// ---- resale -----------------------------------------------------------------------------

/// A small seated event and `n` sellers who each bought one seat and listed it: (event id,
/// [(seller token, ticket id, ticket token, listing id)]).
async fn listed_tickets(
    cluster: &Cluster,
    n: usize,
) -> (String, Vec<(String, String, String, String)>) {
    let event = cluster
        .event(
            json!([{"name": "Floor", "rows": 5, "seatsPerRow": 20, "priceCents": 10000}]),
            4,
        )
        .await;
    let mut out = Vec::new();
    for i in 0..n {
        let token = cluster.token(&format!("seller-{i}"), &[Role::Customer]);
        let seat = format!("1-{}-{}", (b'A' + (i / 20) as u8) as char, i % 20 + 1);
        let (status, b) = cluster
            .post(
                0,
                "/v1/attempt",
                &token,
                &json!({"eventId": event, "seatIds": [seat]}),
            )
            .await;
        assert_eq!(status, 201, "{b}");
        let (status, paid) = cluster
            .commit(0, &token, "buy", b["bookingId"].as_str().unwrap())
            .await;
        assert_eq!(status, 200, "{paid}");
        let ticket = paid["tickets"][0]["ticketId"].as_str().unwrap().to_owned();
        let ticket_token = paid["tickets"][0]["token"].as_str().unwrap().to_owned();
        let (status, l) = cluster
            .post(
                0,
                "/v1/postTicket",
                &token,
                &json!({"originalTicketId": ticket, "resalePriceCents": 10000}),
            )
            .await;
        assert_eq!(status, 201, "{l}");
        out.push((
            token,
            ticket,
            ticket_token,
            l["listingId"].as_str().unwrap().to_owned(),
        ));
    }
    (event, out)
}

async fn listings_on_offer(cluster: &Cluster, event: &str) -> Vec<String> {
    let (_, l) = cluster
        .send(
            cluster
                .http
                .get(cluster.node(0).url(&format!("/v1/events/{event}/listings"))),
        )
        .await;
    l["listings"]
        .as_array()
        .expect("listings")
        .iter()
        .map(|l| l["listingId"].as_str().unwrap().to_owned())
        .collect()
}

/// 200 buyers race for 20 listings through hold and commit: each is sold exactly once.
async fn two_hundred_buyers_for_twenty_listings(backend: Backend) {
    let nodes = if backend == Backend::Postgres { 2 } else { 1 };
    let cluster = Arc::new(Cluster::start(backend, nodes, &[]).await);
    let (event, listed) = listed_tickets(&cluster, 20).await;
    let bought = Arc::new(AtomicUsize::new(0));
    futures_util::stream::iter(0..200usize)
        .for_each_concurrent(100, |i| {
            let (cluster, event, bought) = (cluster.clone(), event.clone(), bought.clone());
            async move {
                let token = cluster.token(&format!("fan-{i}"), &[Role::Customer]);
                let deadline = Instant::now() + Duration::from_secs(120);
                while bought.load(Ordering::SeqCst) < 20 {
                    assert!(Instant::now() < deadline, "fan {i} never finished");
                    let offer = listings_on_offer(&cluster, &event).await;
                    let Some(pick) = offer.get(i % offer.len().max(1)) else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let (status, b) = cluster
                        .post(
                            i,
                            "/v1/attempt",
                            &token,
                            &json!({"eventId": event, "listingIds": [pick]}),
                        )
                        .await;
                    if status == 409 {
                        continue;
                    }
                    assert_eq!(status, 201, "{b}");
                    let (status, paid) = cluster
                        .commit(
                            i,
                            &token,
                            &format!("k-{pick}"),
                            b["bookingId"].as_str().unwrap(),
                        )
                        .await;
                    assert_eq!(status, 200, "{paid}");
                    bought.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        })
        .await;
    assert_eq!(bought.load(Ordering::SeqCst), 20);
    assert!(listings_on_offer(&cluster, &event).await.is_empty());
    for (seller, _, _, listing) in &listed {
        let (_, mine) = cluster
            .send(
                cluster
                    .http
                    .get(cluster.node(0).url("/v1/listings"))
                    .bearer_auth(seller),
            )
            .await;
        assert_eq!(mine["listings"][0]["listingId"], listing.as_str());
        assert_eq!(mine["listings"][0]["status"], "SOLD");
    }
    cluster.verify();
}

/// The seller withdraws every listing while buyers race to buy them: each listing ends
/// either SOLD to one buyer or WITHDRAWN with the seller's ticket valid — never both.
async fn the_seller_withdraws_while_buyers_commit(backend: Backend) {
    let cluster = Arc::new(Cluster::start(backend, 1, &[]).await);
    let (event, listed) = listed_tickets(&cluster, 10).await;
    let bought = Arc::new(AtomicUsize::new(0));
    let buyers = futures_util::stream::iter(0..40usize).for_each_concurrent(40, |i| {
        let (cluster, event, bought) = (cluster.clone(), event.clone(), bought.clone());
        let listing = listed[i % listed.len()].3.clone();
        async move {
            let token = cluster.token(&format!("fan-{i}"), &[Role::Customer]);
            let (status, b) = cluster
                .post(
                    0,
                    "/v1/attempt",
                    &token,
                    &json!({"eventId": event, "listingId": listing}),
                )
                .await;
            if status == 201 {
                let (status, paid) = cluster
                    .commit(0, &token, "k", b["bookingId"].as_str().unwrap())
                    .await;
                if status == 200 {
                    assert_eq!(paid["status"], "CONFIRMED");
                    bought.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let withdrawn = Arc::new(AtomicUsize::new(0));
    let seller = futures_util::stream::iter(listed.clone()).for_each_concurrent(
        10,
        |(token, _, _, listing)| {
            let (cluster, withdrawn) = (cluster.clone(), withdrawn.clone());
            async move {
                let url = cluster.node(0).url(&format!("/v1/listings/{listing}"));
                // A RESERVED listing cannot be withdrawn; keep trying until it is ours or sold.
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let (status, l) = cluster
                        .send(cluster.http.delete(&url).bearer_auth(&token))
                        .await;
                    match (status, l["listingStatus"].as_str()) {
                        (200, _) => {
                            withdrawn.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        (409, Some("SOLD")) => return,
                        (409, _) => {}
                        other => panic!("unexpected {other:?}: {l}"),
                    }
                    assert!(Instant::now() < deadline, "listing {listing} never settled");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        },
    );
    tokio::join!(buyers, seller);
    assert_eq!(
        bought.load(Ordering::SeqCst) + withdrawn.load(Ordering::SeqCst),
        listed.len(),
        "every listing sold once or came back to its seller"
    );
    cluster.verify();
}

/// A listed ticket scanned at the door at the moment a buyer pays for it: exactly one wins.
async fn a_listed_ticket_at_the_door_while_it_sells(backend: Backend) {
    let cluster = Arc::new(Cluster::start(backend, 1, &[]).await);
    let (event, listed) = listed_tickets(&cluster, 10).await;
    let scanner = cluster.token("door", &[Role::Scanner]);
    for (i, (_, _, ticket_token, listing)) in listed.iter().enumerate() {
        let buyer = cluster.token(&format!("fan-{i}"), &[Role::Customer]);
        let (status, b) = cluster
            .post(
                0,
                "/v1/attempt",
                &buyer,
                &json!({"eventId": event, "listingId": listing}),
            )
            .await;
        assert_eq!(status, 201, "{b}");
        let booking = b["bookingId"].as_str().unwrap().to_owned();
        let body = json!({"token": ticket_token, "eventId": event});
        let ((scan, scanned), (paid, confirmed)) = tokio::join!(
            cluster.post(0, "/v1/checkin", &scanner, &body),
            cluster.commit(0, &buyer, "k", &booking),
        );
        let admitted = scan == 200;
        let sold = paid == 200 && confirmed["status"] == "CONFIRMED";
        assert!(
            admitted != sold,
            "exactly one must win: scan {scan} {scanned}, commit {paid} {confirmed}"
        );
    }
    cluster.verify();
}

/// The owner cancels a booking for a refund while listing its ticket: exactly one wins.
async fn a_refund_races_a_listing(backend: Backend) {
    let cluster = Arc::new(Cluster::start(backend, 1, &[]).await);
    let event = cluster
        .event(
            json!([{"name": "Floor", "rows": 2, "seatsPerRow": 10, "priceCents": 10000}]),
            8,
        )
        .await;
    for i in 0..10 {
        let token = cluster.token(&format!("owner-{i}"), &[Role::Customer]);
        let (_, b) = cluster
            .post(
                0,
                "/v1/attempt",
                &token,
                &json!({"eventId": event, "seatIds": [format!("1-A-{}", i + 1)]}),
            )
            .await;
        let booking = b["bookingId"].as_str().unwrap().to_owned();
        let (_, paid) = cluster.commit(0, &token, "k", &booking).await;
        let ticket = paid["tickets"][0]["ticketId"].as_str().unwrap().to_owned();
        let url = cluster.node(0).url(&format!("/v1/booking/{booking}"));
        let listing = json!({"originalTicketId": ticket, "resalePriceCents": 9000});
        let ((refund, _), (list, _)) = tokio::join!(
            cluster.send(cluster.http.delete(&url).bearer_auth(&token)),
            cluster.post(0, "/v1/postTicket", &token, &listing),
        );
        assert!(
            (refund == 200) != (list == 201),
            "exactly one must win: refund {refund}, listing {list}"
        );
    }
    cluster.verify();
}

/// The owner gives a ticket away while also selling it: the recipient accepting and a buyer
/// paying race; exactly one gets the ticket.
async fn a_transfer_races_a_resale(backend: Backend) {
    let cluster = Arc::new(Cluster::start(backend, 1, &[]).await);
    let event = cluster
        .event(
            json!([{"name": "Floor", "rows": 2, "seatsPerRow": 10, "priceCents": 10000}]),
            8,
        )
        .await;
    for i in 0..10 {
        let owner = cluster.token(&format!("owner-{i}"), &[Role::Customer]);
        let friend_id = format!("friend-{i}");
        let friend = cluster.token(&friend_id, &[Role::Customer]);
        let buyer = cluster.token(&format!("buyer-{i}"), &[Role::Customer]);
        let (_, b) = cluster
            .post(
                0,
                "/v1/attempt",
                &owner,
                &json!({"eventId": event, "seatIds": [format!("1-A-{}", i + 1)]}),
            )
            .await;
        let (_, paid) = cluster
            .commit(0, &owner, "k", b["bookingId"].as_str().unwrap())
            .await;
        let ticket = paid["tickets"][0]["ticketId"].as_str().unwrap().to_owned();
        let give = async {
            let (status, t) = cluster
                .post(
                    0,
                    &format!("/v1/tickets/{ticket}/transfer"),
                    &owner,
                    &json!({"toCustomer": friend_id}),
                )
                .await;
            if status != 201 {
                return false;
            }
            let id = t["transferId"].as_str().unwrap();
            let (status, _) = cluster
                .post(
                    0,
                    &format!("/v1/transfers/{id}/accept"),
                    &friend,
                    &json!({}),
                )
                .await;
            status == 200
        };
        let sell = async {
            let (status, l) = cluster
                .post(
                    0,
                    "/v1/postTicket",
                    &owner,
                    &json!({"originalTicketId": ticket, "resalePriceCents": 10000}),
                )
                .await;
            if status != 201 {
                return false;
            }
            let (status, h) = cluster
                .post(
                    0,
                    "/v1/attempt",
                    &buyer,
                    &json!({"eventId": event, "listingId": l["listingId"]}),
                )
                .await;
            if status != 201 {
                return false;
            }
            let (status, c) = cluster
                .commit(0, &buyer, "k", h["bookingId"].as_str().unwrap())
                .await;
            status == 200 && c["status"] == "CONFIRMED"
        };
        let (given, sold) = tokio::join!(give, sell);
        assert!(
            given != sold,
            "ticket {i}: given away {given}, sold {sold}; exactly one must happen"
        );
    }
    cluster.verify();
}

// ---- transfers ---------------------------------------------------------------------------

/// Buys `seats` for `token` in one booking; returns its tickets.
async fn buy_seats(cluster: &Cluster, token: &str, event: &str, seats: &[String]) -> Vec<Value> {
    let (status, b) = cluster
        .post(
            0,
            "/v1/attempt",
            token,
            &json!({"eventId": event, "seatIds": seats}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    let booking = b["bookingId"].as_str().expect("id");
    let (status, paid) = cluster
        .commit(0, token, &format!("buy-{booking}"), booking)
        .await;
    assert_eq!(status, 200, "{paid}");
    paid["tickets"].as_array().expect("tickets").clone()
}

/// Tickets given away at once in the transfer race.
const TRANSFER_ROUNDS: usize = 24;

/// For each of many tickets at once: the sender offers it to bob; then, all at the same time,
/// bob accepts (twice), the sender cancels and offers it to carol instead, and (every third
/// ticket) a scanner checks it in at the door. Exactly one of these wins for each ticket:
/// - bob's accept: one accept is 200, the other 409; the cancel is 409 `transfer-not-pending`;
///   carol's offer is 409; the old token is refused at the door; bob holds the one live ticket;
/// - the cancel: both accepts are 409; carol's offer is 201;
/// - the scan: the ticket is USED and nobody accepts it.
async fn accept_races_cancel_retransfer_and_the_door(backend: Backend) {
    let nodes = if backend == Backend::Postgres { 2 } else { 1 };
    let cluster = Arc::new(Cluster::start(backend, nodes, &[]).await);
    let event = cluster
        .event(
            json!([{"name": "Floor", "rows": 4, "seatsPerRow": 10, "priceCents": 10000}]),
            40,
        )
        .await;
    let alice = cluster.token("alice", &[Role::Customer]);
    let bob = cluster.token("bob", &[Role::Customer]);
    let scanner = cluster.token("door", &[Role::Scanner]);
    let seats: Vec<String> = (1..=TRANSFER_ROUNDS)
        .map(|i| format!("1-{}-{}", ["A", "B", "C"][i % 3], i / 3 + 1))
        .collect();
    let tickets = buy_seats(&cluster, &alice, &event, &seats).await;
    assert_eq!(tickets.len(), TRANSFER_ROUNDS);

    let rounds = tickets.into_iter().enumerate().map(|(i, t)| {
        let cluster = cluster.clone();
        let (alice, bob, scanner, event) =
            (alice.clone(), bob.clone(), scanner.clone(), event.clone());
        async move {
            let ticket = t["ticketId"].as_str().expect("id").to_owned();
            let token = t["token"].as_str().expect("token").to_owned();
            let (status, offer) = cluster
                .post(
                    i,
                    &format!("/v1/tickets/{ticket}/transfer"),
                    &alice,
                    &json!({"toCustomer": "bob"}),
                )
                .await;
            assert_eq!(status, 201, "{offer}");
            let transfer = offer["transferId"].as_str().expect("id").to_owned();
            let accept_path = format!("/v1/transfers/{transfer}/accept");
            let scan = i % 3 == 0;
            let empty = json!({});
            let (accept1, accept2, sender, door) = tokio::join!(
                cluster.post(i, &accept_path, &bob, &empty),
                cluster.post(i + 1, &accept_path, &bob, &empty),
                async {
                    let cancel = cluster
                        .delete(i + 1, &format!("/v1/transfers/{transfer}"), &alice)
                        .await;
                    let again = cluster
                        .post(
                            i,
                            &format!("/v1/tickets/{ticket}/transfer"),
                            &alice,
                            &json!({"toCustomer": "carol"}),
                        )
                        .await;
                    (cancel, again)
                },
                async {
                    if scan {
                        Some(
                            cluster
                                .post(
                                    i + 1,
                                    "/v1/checkin",
                                    &scanner,
                                    &json!({"token": token, "eventId": event}),
                                )
                                .await,
                        )
                    } else {
                        None
                    }
                },
            );
            let ((cancel_status, cancel), (again_status, again)) = sender;
            let accepted: Vec<&Value> = [&accept1, &accept2]
                .into_iter()
                .filter(|r| r.0 == 200)
                .map(|r| &r.1)
                .collect();
            for r in [&accept1, &accept2] {
                assert!(r.0 == 200 || r.0 == 409, "accept answered {}: {}", r.0, r.1);
            }
            let scanned = door.as_ref().is_some_and(|d| d.0 == 200);
            match accepted.as_slice() {
                [won] => {
                    assert_eq!(won["transfer"]["status"], "ACCEPTED", "{won}");
                    assert_eq!(won["ticket"]["status"], "VALID");
                    assert_eq!(won["ticket"]["replaces"], ticket.as_str());
                    assert_eq!(cancel_status, 409, "cancel after accept: {cancel}");
                    assert_eq!(cancel["code"], "transfer-not-pending");
                    assert_eq!(again_status, 409, "re-offer after accept: {again}");
                    assert!(!scanned, "the old ticket admitted after it was given away");
                    TransferOutcome::Accepted
                }
                [] => {
                    let bob_lost = |r: &(u16, Value)| {
                        r.1["code"] == "transfer-not-pending"
                            || r.1["code"] == "ticket-not-transferable"
                    };
                    assert!(
                        bob_lost(&accept1) && bob_lost(&accept2),
                        "{accept1:?} {accept2:?}"
                    );
                    if scanned {
                        // The re-offer may have come before the scan, never an accept after it.
                        let _ = (again_status, again);
                        TransferOutcome::Scanned
                    } else {
                        assert_eq!(cancel_status, 200, "{cancel}");
                        assert_eq!(cancel["status"], "CANCELLED");
                        assert_eq!(again_status, 201, "{again}");
                        assert_eq!(again["toCustomer"], "carol");
                        TransferOutcome::Cancelled
                    }
                }
                _ => panic!("accepted twice: {accept1:?} {accept2:?}"),
            }
        }
    });
    let outcomes = futures_util::future::join_all(rounds).await;

    // Bob holds exactly the tickets he accepted, each replacing one of alice's, now REISSUED.
    let won = outcomes
        .iter()
        .filter(|o| **o == TransferOutcome::Accepted)
        .count();
    let (_, mine) = cluster.get(0, "/v1/tickets", &bob).await;
    let live: Vec<&Value> = mine["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .filter(|t| t["status"] == "VALID")
        .collect();
    assert_eq!(live.len(), won, "{mine}");
    let (_, hers) = cluster.get(0, "/v1/tickets", &alice).await;
    let reissued = hers["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .filter(|t| t["status"] == "REISSUED")
        .count();
    assert_eq!(reissued, won, "{hers}");
    // Offline scanners learn every ticket that was given away.
    let (status, revoked) = cluster
        .get(
            0,
            &format!("/v1/events/{event}/revocations"),
            &cluster.token("door", &[Role::Scanner]),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(
        revoked["revocations"].as_array().expect("list").len(),
        won,
        "{revoked}"
    );
    cluster.verify();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferOutcome {
    Accepted,
    Cancelled,
    Scanned,
}

/// The on-sale (issue 9): 150 buyers join the waiting room before the sale (two nodes on
/// PostgreSQL), are let in by rate and free places, hold with their admission token and pay
/// through the commit queue (202, then the booking confirms); when the places are gone, the
/// room tells everyone still waiting that it is sold out. Exactly the capacity is sold.
async fn an_on_sale_rush_through_the_waiting_room(backend: Backend) {
    const BUYERS: usize = 150;
    const PLACES: usize = 60;
    let nodes = if backend == Backend::Postgres { 2 } else { 1 };
    let cluster = Arc::new(Cluster::start(backend, nodes, &[]).await);
    let rfc = |d: time::Duration| {
        (time::OffsetDateTime::now_utc() + d)
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time")
    };
    let body = json!({
        "name": "Rush Night", "category": "concert", "startsAt": "2099-06-01T19:30:00Z",
        "onSaleAt": rfc(time::Duration::seconds(3)),
        "currency": "USD",
        "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                  "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
        "sections": [{"name": "Pit", "capacity": PLACES, "priceCents": 5000}],
        "policies": {"maxTicketsPerCustomer": 2, "waitingRoom": {
            "opensAt": rfc(time::Duration::minutes(-1)),
            "admitPerMinute": 60_000, "admissionMinutes": 5}}
    });
    let org = cluster.token("org", &[Role::Organizer]);
    let (status, e) = cluster.post(0, "/v1/events", &org, &body).await;
    assert_eq!(status, 201, "{e}");
    let event = e["eventId"].as_str().expect("id").to_owned();
    let bought = Arc::new(AtomicUsize::new(0));
    let told_sold_out = Arc::new(AtomicUsize::new(0));
    let admitted_too_late = Arc::new(AtomicUsize::new(0));
    futures_util::stream::iter(0..BUYERS)
        .for_each_concurrent(BUYERS, |i| {
            let cluster = cluster.clone();
            let event = event.clone();
            let (bought, told_sold_out, too_late) = (
                bought.clone(),
                told_sold_out.clone(),
                admitted_too_late.clone(),
            );
            async move {
                let token = cluster.token(&format!("fan-{i}"), &[Role::Customer]);
                let (status, q) = cluster
                    .post(i, &format!("/v1/events/{event}/queue"), &token, &json!({}))
                    .await;
                assert_eq!(status, 201, "{q}");
                let queue = q["queueId"].as_str().expect("queue id").to_owned();
                let deadline = Instant::now() + Duration::from_secs(120);
                let admission = loop {
                    assert!(Instant::now() < deadline, "fan {i} waited forever");
                    let (_, q) = cluster.get(i, &format!("/v1/queue/{queue}"), &token).await;
                    match q["status"].as_str() {
                        Some("ADMITTED") => {
                            break q["admissionToken"].as_str().expect("token").to_owned();
                        }
                        Some("SOLD_OUT") => {
                            told_sold_out.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Some("WAITING") => tokio::time::sleep(Duration::from_millis(200)).await,
                        other => panic!("unexpected {other:?}: {q}"),
                    }
                };
                let hold = json!({"eventId": event, "section": "Pit", "quantity": 2});
                let booking = loop {
                    assert!(Instant::now() < deadline, "fan {i} never finished");
                    let (status, b) = cluster
                        .send(
                            cluster
                                .http
                                .post(cluster.node(i).url("/v1/attempt"))
                                .bearer_auth(&token)
                                .header("Admission-Token", &admission)
                                .json(&hold),
                        )
                        .await;
                    match (status, b["code"].as_str()) {
                        (201, _) => break b["bookingId"].as_str().expect("id").to_owned(),
                        (409, Some("not-enough-seats")) => {
                            too_late.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        (409, Some("seats-contended")) => continue,
                        other => panic!("unexpected {other:?}: {b}"),
                    }
                };
                let (status, queued) = cluster.commit(i, &token, &format!("k-{i}"), &booking).await;
                assert_eq!(status, 202, "{queued}");
                assert_eq!(queued["statusUrl"], format!("/v1/booking/{booking}/events"));
                let done = cluster
                    .wait_for_booking(&token, &booking, "CONFIRMED")
                    .await;
                assert_eq!(done["tickets"].as_array().map(Vec::len), Some(2));
                bought.fetch_add(2, Ordering::SeqCst);
            }
        })
        .await;
    assert_eq!(
        bought.load(Ordering::SeqCst),
        PLACES,
        "exactly the places sold"
    );
    let map = cluster.seat_map(&event).await;
    assert_eq!(map["sections"][0]["sold"], PLACES);
    // Admission never outran the free places by more than one round's worth: most buyers who
    // did not get places were told the room sold out rather than let in to find nothing.
    let late = admitted_too_late.load(Ordering::SeqCst);
    assert_eq!(
        told_sold_out.load(Ordering::SeqCst) + late + PLACES / 2,
        BUYERS,
        "every buyer finished"
    );
    assert!(
        late <= PLACES,
        "{late} buyers let in after the places were gone"
    );
    cluster.verify();
}
