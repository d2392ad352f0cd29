//! Booking races against the scaled-out cluster of `scripts/cluster.sh up`: three nodes behind
//! HAProxy, PostgreSQL through pgbouncer, a streaming replica, Redis and NATS. Every request
//! goes through the load balancer, so a buyer's hold and commit may land on different nodes.
//! Exactly the right number is sold, every node took part, the replica shows the sales, and
//! `boxoffice verify` is clean. Each run uses customers and keys of its own, so it can be
//! repeated against the same cluster.
//!
//! Skipped (passes, saying so) unless `BOXOFFICE_CLUSTER_URL` is set; `scripts/test.sh` brings
//! the cluster up, sources its `env` file and runs this test against it:
//!
//! ```sh
//! scripts/cluster.sh up && . target/cluster/env
//! cargo test -p boxoffice --test cluster -- --nocapture
//! scripts/cluster.sh down
//! ```

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use boxoffice_api::auth::{Role, Secret, mint_hs256};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// The running cluster, as `scripts/cluster.sh up` described it in its `env` file.
struct Cluster {
    url: String,
    nodes: Vec<String>,
    database_url: String,
    replica_url: String,
    secret: Secret,
    /// Tells this run's customers and keys from earlier runs' on the same cluster.
    run: u64,
    ticket_key: String,
    http: reqwest::Client,
}

impl Cluster {
    /// `None` (and a message) when no cluster is configured.
    fn from_env(test: &str) -> Option<Arc<Self>> {
        let Ok(url) = std::env::var("BOXOFFICE_CLUSTER_URL") else {
            eprintln!(
                "skipped {test}: BOXOFFICE_CLUSTER_URL is not set (start a cluster with \
                 `scripts/cluster.sh up` and source target/cluster/env)"
            );
            return None;
        };
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("BOXOFFICE_CLUSTER_URL is set but {name} is not"))
        };
        let secret = std::fs::read_to_string(var("BOXOFFICE_CLUSTER_JWT_SECRET_FILE"))
            .expect("the cluster's JWT secret");
        Some(Arc::new(Self {
            url: url.trim_end_matches('/').to_owned(),
            nodes: var("BOXOFFICE_CLUSTER_NODES")
                .split(',')
                .map(str::to_owned)
                .collect(),
            database_url: var("BOXOFFICE_CLUSTER_DATABASE_URL"),
            replica_url: var("BOXOFFICE_CLUSTER_REPLICA_URL"),
            run: rand::random(),
            secret: Secret::new(secret.trim()),
            ticket_key: var("BOXOFFICE_CLUSTER_TICKET_KEY_FILE"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
        }))
    }

    /// A token for this run's customer `sub`.
    fn token(&self, sub: &str, roles: &[Role]) -> String {
        let sub = format!("{sub}-{:x}", self.run);
        mint_hs256(&self.secret, &sub, roles, Duration::from_secs(3600)).expect("token")
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        assert!(status < 500, "server error {status}: {body}");
        (status, body)
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let req = self.http.post(format!("{}{path}", self.url));
        self.send(req.bearer_auth(token).json(body)).await
    }

    async fn commit(&self, token: &str, key: &str, booking: &str) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}/v1/commit", self.url))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&json!({"bookingId": booking, "paymentMethod": "pm_card_visa"}));
        self.send(req).await
    }

    async fn seat_map(&self, event: &str) -> Value {
        let req = self
            .http
            .get(format!("{}/v1/events/{event}/seats", self.url));
        self.send(req).await.1
    }

    async fn event(&self, name: &str, sections: Value) -> String {
        let body = json!({
            "name": name, "category": "concert", "startsAt": "2099-06-01T19:30:00Z",
            "currency": "USD",
            "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                      "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
            "sections": sections,
            "policies": {"maxTicketsPerCustomer": 4}
        });
        let org = self.token("cluster-org", &[Role::Organizer]);
        let (status, e) = self.post("/v1/events", &org, &body).await;
        assert_eq!(status, 201, "{e}");
        e["eventId"].as_str().expect("id").to_owned()
    }

    /// How many `POST /v1/attempt` requests each node has answered so far.
    async fn attempts_per_node(&self) -> Vec<f64> {
        let mut counts = Vec::new();
        for node in &self.nodes {
            let n: f64 = self
                .metrics_text(node)
                .await
                .lines()
                .filter(|l| l.starts_with("http_requests_total{") && l.contains("/v1/attempt"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            counts.push(n);
        }
        counts
    }

    /// `node`'s `/metrics`.
    async fn metrics_text(&self, node: &str) -> String {
        self.http
            .get(format!("{node}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// The sum of every sample of `metric` (a name, or a name and labels up to `{…`) on
    /// `node`'s `/metrics`.
    async fn metric(&self, node: &str, metric: &str) -> f64 {
        self.metrics_text(node)
            .await
            .lines()
            .filter(|l| {
                l.strip_prefix(metric)
                    .is_some_and(|rest| rest.starts_with([' ', '{', ',']) || metric.ends_with('"'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits up to `within` until `metric` on every node satisfies `ok`.
    async fn every_node_shows(&self, metric: &str, within: Duration, ok: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + within;
        for node in &self.nodes {
            loop {
                let v = self.metric(node, metric).await;
                if ok(v) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{node}: {metric} is {v} after {within:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// `scripts/cluster.sh replica stop|start` for this cluster.
    fn replica(&self, action: &str) {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let status = std::process::Command::new("bash")
            .arg(format!("{root}/scripts/cluster.sh"))
            .args(["replica", action])
            .env(
                "CLUSTER_DIR",
                std::env::var("BOXOFFICE_CLUSTER_DIR").expect("BOXOFFICE_CLUSTER_DIR"),
            )
            .env(
                "CLUSTER_PORT_BASE",
                std::env::var("BOXOFFICE_CLUSTER_PORT_BASE").expect("BOXOFFICE_CLUSTER_PORT_BASE"),
            )
            .status()
            .expect("scripts/cluster.sh");
        assert!(status.success(), "scripts/cluster.sh replica {action}");
    }

    /// `GET path` on `node` (no token): the status.
    async fn get_status(&self, node: &str, path: &str) -> u16 {
        let res = self
            .http
            .get(format!("{node}{path}"))
            .send()
            .await
            .expect("request");
        res.status().as_u16()
    }

    /// Waits until the streaming replica shows `sold` seats of `event` sold (read straight
    /// from the replica: replication carries the nodes' writes).
    async fn replica_shows_sold(&self, event: &str, sold: i64) {
        let (client, connection) =
            tokio_postgres::connect(&self.replica_url, tokio_postgres::NoTls)
                .await
                .expect("connect to the replica");
        tokio::spawn(connection);
        let in_recovery: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .expect("query")
            .get(0);
        assert!(
            in_recovery,
            "BOXOFFICE_CLUSTER_REPLICA_URL is not a standby"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n: i64 = client
                .query_one(
                    "SELECT count(*) FROM seats WHERE event_id = $1::text::uuid AND state = 'SOLD'",
                    &[&event],
                )
                .await
                .expect("query")
                .get(0);
            if n == sold {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica shows {n} of {sold} sold seats"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `boxoffice verify` over the cluster's database, through pgbouncer (told when it pools
    /// by transaction, as the nodes are).
    fn verify(&self) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pooler = match std::env::var("BOXOFFICE_CLUSTER_POOL_MODE").as_deref() {
            Ok("session") => "none",
            _ => "transaction",
        };
        let out = common::boxoffice(
            &["verify"],
            &[
                ("BOXOFFICE_DATABASE_URL", &self.database_url),
                ("BOXOFFICE_DATABASE_POOLER", pooler),
                ("BOXOFFICE_DATA_DIR", dir.path().to_str().expect("utf-8")),
                ("BOXOFFICE_TICKET_KEY_FILE", &self.ticket_key),
            ],
        );
        assert!(
            out.status.success(),
            "boxoffice verify found problems:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// 400 buyers, each after one specific seat of 100 (holds pass the Redis gate): each reads
/// the map, picks a random open seat, holds and pays; on 409 looks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn explicit_seats_race_through_the_load_balancer() {
    let Some(cluster) = Cluster::from_env("explicit_seats_race_through_the_load_balancer") else {
        return;
    };
    let before = cluster.attempts_per_node().await;
    let event = cluster
        .event(
            "Cluster Night",
            json!([{"name": "Floor", "rows": 5, "seatsPerRow": 20, "priceCents": 10000}]),
        )
        .await;
    let bought = Arc::new(AtomicUsize::new(0));
    futures_util::stream::iter(0..400)
        .for_each_concurrent(200, |i| {
            let cluster = cluster.clone();
            let event = event.clone();
            let bought = bought.clone();
            async move {
                let token = cluster.token(&format!("seat-buyer-{i}"), &[Role::Customer]);
                let deadline = Instant::now() + Duration::from_secs(180);
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
                    let body = json!({"eventId": event, "seatIds": [seat]});
                    let (status, b) = cluster.post("/v1/attempt", &token, &body).await;
                    match status {
                        201 => {
                            let id = b["bookingId"].as_str().expect("id");
                            let (status, paid) = cluster
                                .commit(&token, &format!("seat-{i}-{:x}", cluster.run), id)
                                .await;
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
    assert_eq!(bought.load(Ordering::SeqCst), 100, "every seat sold once");
    let map = cluster.seat_map(&event).await;
    let seats = map["seats"].as_array().expect("seats");
    assert_eq!(seats.len(), 100);
    assert!(seats.iter().all(|s| s["status"] == "SOLD"), "{map}");
    // The load balancer spread the holds over all three nodes.
    let after = cluster.attempts_per_node().await;
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        assert!(
            a > b,
            "node {} answered no hold: {before:?} → {after:?}",
            i + 1
        );
    }
    cluster.replica_shows_sold(&event, 100).await;
    cluster.verify();
}

/// 300 buyers for 120 general-admission places (best available, straight to PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn general_admission_race_through_the_load_balancer() {
    let Some(cluster) = Cluster::from_env("general_admission_race_through_the_load_balancer")
    else {
        return;
    };
    let event = cluster
        .event(
            "Cluster Pit",
            json!([{"name": "Pit", "capacity": 120, "priceCents": 5000}]),
        )
        .await;
    let bought = Arc::new(AtomicUsize::new(0));
    let sold_out = Arc::new(AtomicUsize::new(0));
    let buyers = 300;
    futures_util::stream::iter(0..buyers)
        .for_each_concurrent(200, |i| {
            let cluster = cluster.clone();
            let event = event.clone();
            let (bought, sold_out) = (bought.clone(), sold_out.clone());
            async move {
                let token = cluster.token(&format!("ga-fan-{i}"), &[Role::Customer]);
                let body = json!({"eventId": event, "section": "Pit", "quantity": 1});
                let deadline = Instant::now() + Duration::from_secs(180);
                loop {
                    assert!(Instant::now() < deadline, "fan {i} never finished");
                    let (status, b) = cluster.post("/v1/attempt", &token, &body).await;
                    match (status, b["code"].as_str()) {
                        (201, _) => {
                            let id = b["bookingId"].as_str().expect("id");
                            let (status, paid) = cluster
                                .commit(&token, &format!("ga-{i}-{:x}", cluster.run), id)
                                .await;
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
    assert_eq!(bought.load(Ordering::SeqCst), 120);
    assert_eq!(sold_out.load(Ordering::SeqCst), buyers - 120);
    let map = cluster.seat_map(&event).await;
    assert_eq!(map["sections"][0]["sold"], 120, "{map}");
    cluster.verify();
}

/// Catalog reads come from the streaming replica while it keeps up: an organizer reads back
/// the event they just created on the node that created it (read-your-writes) and on the
/// others (an event the replica does not know yet is looked up on the primary); the nodes
/// report the replica's lag and count replica reads; with the replica stopped every read is
/// still answered (from the primary) and the nodes say the replica is skipped; once it is
/// back they use it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_reads_use_the_replica_and_skip_it_when_it_is_down() {
    let Some(cluster) =
        Cluster::from_env("catalog_reads_use_the_replica_and_skip_it_when_it_is_down")
    else {
        return;
    };
    cluster
        .every_node_shows("database_replica_usable", Duration::from_secs(30), |v| {
            v == 1.0
        })
        .await;
    let lag = cluster
        .metric(&cluster.nodes[0], "database_replica_lag_seconds")
        .await;
    assert!(lag < 2.0, "replica lag {lag}");
    let before: Vec<f64> = {
        let mut v = Vec::new();
        for node in &cluster.nodes {
            v.push(
                cluster
                    .metric(node, "database_catalog_reads_total{from=\"replica\"")
                    .await,
            );
        }
        v
    };
    let org = cluster.token("replica-org", &[Role::Organizer]);
    for round in 0..5 {
        for (i, node) in cluster.nodes.iter().enumerate() {
            // Created on one node, read at once on it and on the next.
            let body = json!({
                "name": format!("Replica Night {round}-{i}"), "category": "concert",
                "startsAt": "2099-06-01T19:30:00Z", "currency": "USD",
                "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S",
                          "city": "Seattle", "zipCode": "98134", "country": "US",
                          "lat": 47.5952, "lon": -122.3316},
                "sections": [{"name": "Floor", "rows": 2, "seatsPerRow": 10, "priceCents": 5000}]
            });
            let res = cluster
                .http
                .post(format!("{node}/v1/events"))
                .bearer_auth(&org)
                .json(&body)
                .send()
                .await
                .expect("create");
            assert_eq!(res.status().as_u16(), 201);
            let id = res.json::<Value>().await.expect("json")["eventId"]
                .as_str()
                .expect("id")
                .to_owned();
            let next = &cluster.nodes[(i + 1) % cluster.nodes.len()];
            for n in [node, next] {
                assert_eq!(
                    cluster.get_status(n, &format!("/v1/events/{id}")).await,
                    200
                );
                assert_eq!(
                    cluster
                        .get_status(n, &format!("/v1/events/{id}/seats"))
                        .await,
                    200
                );
            }
        }
    }
    // Once the replica has replayed an event, its pages are read there, on every node.
    let event = cluster
        .event(
            "Replica Reads",
            json!([{"name": "Floor", "rows": 2, "seatsPerRow": 10, "priceCents": 5000}]),
        )
        .await;
    for (node, before) in cluster.nodes.iter().zip(&before) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert_eq!(
                cluster
                    .get_status(node, &format!("/v1/events/{event}/seats"))
                    .await,
                200
            );
            let after = cluster
                .metric(node, "database_catalog_reads_total{from=\"replica\"")
                .await;
            if after > *before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{node} read nothing from the replica"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    cluster.replica("stop");
    let down = async {
        for node in &cluster.nodes {
            for _ in 0..5 {
                assert_eq!(
                    cluster
                        .get_status(node, &format!("/v1/events/{event}"))
                        .await,
                    200,
                    "event detail with the replica down"
                );
                assert_eq!(
                    cluster
                        .get_status(node, &format!("/v1/events/{event}/seats"))
                        .await,
                    200,
                    "seat map with the replica down"
                );
            }
        }
        cluster
            .every_node_shows("database_replica_usable", Duration::from_secs(10), |v| {
                v == 0.0
            })
            .await;
    };
    // Bring it back whatever happened, for the tests after this one.
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(down)).await;
    cluster.replica("start");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    cluster
        .every_node_shows("database_replica_usable", Duration::from_secs(30), |v| {
            v == 1.0
        })
        .await;
}

/// The on-sale rush through the load balancer: 300 buyers join the waiting room of an event
/// with 60 seats before its sale opens; once admitted (admission tokens are checked by
/// whichever node the hold lands on) each holds one best-available seat and commits (202,
/// queued through NATS, charged by whichever node's worker takes it) and waits for
/// CONFIRMED. Exactly 60 are sold, everyone else is told the event sold out (by the room or
/// by a refused hold), nobody is answered 5xx, and `verify` is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_on_sale_rush_through_the_waiting_room_sells_exactly_the_capacity() {
    let Some(cluster) =
        Cluster::from_env("an_on_sale_rush_through_the_waiting_room_sells_exactly_the_capacity")
    else {
        return;
    };
    let rfc3339 = |offset: time::Duration| {
        (time::OffsetDateTime::now_utc() + offset)
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time")
    };
    let body = json!({
        "name": "Cluster On-Sale", "category": "concert", "startsAt": "2099-06-01T19:30:00Z",
        "onSaleAt": rfc3339(time::Duration::seconds(5)), "currency": "USD",
        "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                  "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
        "sections": [{"name": "Floor", "rows": 3, "seatsPerRow": 20, "priceCents": 9900}],
        "policies": {"maxTicketsPerCustomer": 4, "waitingRoom": {
            "opensAt": rfc3339(time::Duration::minutes(-1)),
            "admitPerMinute": 6000, "admissionMinutes": 5}}
    });
    let org = cluster.token("onsale-org", &[Role::Organizer]);
    let (status, e) = cluster.post("/v1/events", &org, &body).await;
    assert_eq!(status, 201, "{e}");
    let event = e["eventId"].as_str().expect("id").to_owned();

    let sold = Arc::new(AtomicUsize::new(0));
    let told_sold_out = Arc::new(AtomicUsize::new(0));
    futures_util::stream::iter(0..300)
        .for_each_concurrent(300, |i| {
            let cluster = cluster.clone();
            let event = event.clone();
            let sold = sold.clone();
            let told_sold_out = told_sold_out.clone();
            async move {
                let token = cluster.token(&format!("fan-{i}"), &[Role::Customer]);
                let (status, q) = cluster
                    .post(&format!("/v1/events/{event}/queue"), &token, &json!({}))
                    .await;
                assert_eq!(status, 201, "{q}");
                let queue = q["queueId"].as_str().expect("queueId").to_owned();
                let deadline = Instant::now() + Duration::from_secs(120);
                let place = loop {
                    let req = cluster
                        .http
                        .get(format!("{}/v1/queue/{queue}", cluster.url))
                        .bearer_auth(&token);
                    let (status, place) = cluster.send(req).await;
                    assert_eq!(status, 200, "{place}");
                    match place["status"].as_str() {
                        Some("ADMITTED" | "SOLD_OUT") => break place,
                        Some("WAITING") => {}
                        other => panic!("fan {i}: queue status {other:?}: {place}"),
                    }
                    assert!(Instant::now() < deadline, "fan {i} never admitted: {place}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                };
                if place["status"] == "SOLD_OUT" {
                    told_sold_out.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let admission = place["admissionToken"].as_str().expect("admissionToken");
                let req = cluster
                    .http
                    .post(format!("{}/v1/attempt", cluster.url))
                    .bearer_auth(&token)
                    .header("Admission-Token", admission)
                    .json(&json!({"eventId": event, "section": "Floor", "quantity": 1}));
                let (status, held) = cluster.send(req).await;
                if status == 409 {
                    told_sold_out.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                assert_eq!(status, 201, "fan {i}: {held}");
                let booking = held["bookingId"].as_str().expect("bookingId").to_owned();
                let (status, queued) = cluster
                    .commit(&token, &format!("fan-{i}-{:x}", cluster.run), &booking)
                    .await;
                assert_eq!(status, 202, "a waiting-room commit is queued: {queued}");
                loop {
                    let req = cluster
                        .http
                        .get(format!("{}/v1/booking/{booking}", cluster.url))
                        .bearer_auth(&token);
                    let (status, b) = cluster.send(req).await;
                    assert_eq!(status, 200, "{b}");
                    if b["status"] == "CONFIRMED" {
                        assert_eq!(b["tickets"].as_array().map(Vec::len), Some(1), "{b}");
                        sold.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    assert_eq!(b["status"], "PENDING", "fan {i}: {b}");
                    assert!(Instant::now() < deadline, "fan {i}: not confirmed: {b}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
        .await;
    assert_eq!(sold.load(Ordering::SeqCst), 60, "exactly the capacity sold");
    assert_eq!(told_sold_out.load(Ordering::SeqCst), 240);
    cluster.replica_shows_sold(&event, 60).await;
    cluster.verify();
}
