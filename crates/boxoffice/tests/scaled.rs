//! The scaled-out on-sale path over real HTTP: two `boxoffice` processes on one PostgreSQL,
//! queued commits through NATS JetStream (127.0.0.1:4222), holds through the Redis gate
//! (127.0.0.1:6379). Each test has its own database, JetStream stream and Redis database
//! number, so tests run in parallel. Exactly the capacity is sold, and `verify` is clean.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use boxoffice_api::auth::{Role, Secret, mint_hs256};
use boxoffice_store_postgres::testing::TestDatabase;
use common::{SECRET, Server, boxoffice};
use futures_util::StreamExt;
use serde_json::{Value, json};

const NATS: &str = "nats://127.0.0.1:4222";

fn redis_url(db: u8) -> String {
    format!("redis://127.0.0.1:6379/{db}")
}

struct Cluster {
    nodes: Vec<Server>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    _db: TestDatabase,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(nodes: usize, redis_db: u8) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = TestDatabase::create().await;
        let stream = format!("TEST_{}", uuid::Uuid::new_v4().simple());
        let env: Vec<(String, String)> = vec![
            ("BOXOFFICE_JWT_SECRET".into(), SECRET.into()),
            ("BOXOFFICE_DB_POOL_SIZE".into(), "8".into()),
            ("BOXOFFICE_DATABASE_URL".into(), db.url.clone()),
            ("BOXOFFICE_QUEUED_COMMITS".into(), "true".into()),
            ("BOXOFFICE_NATS_URL".into(), NATS.into()),
            ("BOXOFFICE_NATS_STREAM".into(), stream),
            ("BOXOFFICE_REDIS_URL".into(), redis_url(redis_db)),
        ];
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
        for i in 0..nodes {
            let data = cluster.dir.path().join(format!("node-{i}"));
            let env: Vec<(&str, &str)> = cluster
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let node = Server::start(&data, &env);
            cluster.nodes.push(node);
        }
        cluster
    }

    fn url(&self, node: usize, path: &str) -> String {
        self.nodes[node % self.nodes.len()].url(path)
    }

    fn token(&self, sub: &str, roles: &[Role]) -> String {
        mint_hs256(&Secret::new(SECRET), sub, roles, Duration::from_secs(3600)).expect("token")
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        assert!(status < 500, "server error {status}: {body}");
        (status, body)
    }

    async fn event(&self, rows: u32, per_row: u32) -> String {
        let body = json!({
            "name": "Scaled Night", "category": "concert", "startsAt": "2099-06-01T19:30:00Z",
            "currency": "USD",
            "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                      "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
            "sections": [{"name": "Floor", "rows": rows, "seatsPerRow": per_row, "priceCents": 10000}],
            "policies": {"maxTicketsPerCustomer": 4}
        });
        let org = self.token("org", &[Role::Organizer]);
        let (status, e) = self
            .send(
                self.http
                    .post(self.url(0, "/v1/events"))
                    .bearer_auth(org)
                    .json(&body),
            )
            .await;
        assert_eq!(status, 201, "{e}");
        e["eventId"].as_str().expect("id").to_owned()
    }

    async fn seats(&self, node: usize, event: &str) -> Vec<Value> {
        let (_, map) = self
            .send(
                self.http
                    .get(self.url(node, &format!("/v1/events/{event}/seats"))),
            )
            .await;
        map["seats"].as_array().expect("seats").clone()
    }

    async fn metric(&self, name: &str) -> f64 {
        let mut total = 0.0;
        for i in 0..self.nodes.len() {
            let text = self
                .http
                .get(self.url(i, "/metrics"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            total += text
                .lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        total
    }

    /// Deletes this test's JetStream stream.
    async fn drop_stream(&self) {
        let stream = self
            .env
            .iter()
            .find(|(k, _)| k == "BOXOFFICE_NATS_STREAM")
            .map(|(_, v)| v.clone())
            .expect("stream");
        let config = boxoffice_queue_nats::NatsConfig::new(NATS).with_stream(&stream);
        if let Ok(log) = boxoffice_queue_nats::NatsCommitLog::connect(config).await {
            let _ = log.delete_stream().await;
        }
    }

    /// Runs `boxoffice verify`. A queue worker records a capture just after the confirmation
    /// a buyer polls for, so a booking confirmed an instant ago may not show its capture yet:
    /// that one finding is given a few seconds to clear; any other fails at once.
    async fn verify(&self) {
        let dir = self.dir.path().to_str().expect("utf-8").to_owned();
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.push(("BOXOFFICE_DATA_DIR", &dir));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = boxoffice(&["verify"], &env);
            if out.status.success() {
                return;
            }
            let report = String::from_utf8_lossy(&out.stdout);
            let findings: Vec<&str> = report.lines().filter(|l| l.contains(": ")).collect();
            let only_captures_pending = !findings.is_empty()
                && findings
                    .iter()
                    .all(|l| l.starts_with("confirmed-booking-without-captured-payment:"));
            assert!(
                only_captures_pending && Instant::now() < deadline,
                "boxoffice verify found problems:\n{}{}",
                report,
                String::from_utf8_lossy(&out.stderr)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Buyers who each want one seat: read the map, pick a random open seat, hold it (through the
/// gate), commit (202, through NATS), and wait for CONFIRMED. Returns how many bought.
async fn rush(cluster: Arc<Cluster>, event: &str, buyers: usize, capacity: usize) -> usize {
    let bought = Arc::new(AtomicUsize::new(0));
    futures_util::stream::iter(0..buyers)
        .for_each_concurrent(100, |i| {
            let cluster = cluster.clone();
            let bought = bought.clone();
            let event = event.to_owned();
            async move {
                let token = cluster.token(&format!("buyer-{i}"), &[Role::Customer]);
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    assert!(Instant::now() < deadline, "buyer {i} never finished");
                    let seats = cluster.seats(i, &event).await;
                    let open: Vec<&str> = seats
                        .iter()
                        .filter(|s| s["status"] == "OPEN")
                        .map(|s| s["seatId"].as_str().expect("id"))
                        .collect();
                    if open.is_empty() {
                        if seats.iter().all(|s| s["status"] == "SOLD") {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    let seat = open[rand::random_range(0..open.len())];
                    let (status, b) = cluster
                        .send(
                            cluster
                                .http
                                .post(cluster.url(i, "/v1/attempt"))
                                .bearer_auth(&token)
                                .json(&json!({"eventId": event, "seatIds": [seat]})),
                        )
                        .await;
                    match status {
                        201 => {}
                        409 => continue,
                        other => panic!("unexpected {other}: {b}"),
                    }
                    let id = b["bookingId"].as_str().expect("id").to_owned();
                    let (status, queued) = cluster
                        .send(
                            cluster
                                .http
                                .post(cluster.url(i + 1, "/v1/commit"))
                                .bearer_auth(&token)
                                .header("Idempotency-Key", format!("k-{i}"))
                                .json(&json!({"bookingId": id, "paymentMethod": "pm_card_visa"})),
                        )
                        .await;
                    assert_eq!(status, 202, "{queued}");
                    loop {
                        assert!(Instant::now() < deadline, "booking {id} never confirmed");
                        let (_, read) = cluster
                            .send(
                                cluster
                                    .http
                                    .get(cluster.url(i, &format!("/v1/booking/{id}")))
                                    .bearer_auth(&token),
                            )
                            .await;
                        if read["status"] == "CONFIRMED" {
                            bought.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        assert_eq!(read["status"], "PENDING", "{read}");
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                }
            }
        })
        .await;
    let sold = cluster
        .seats(0, event)
        .await
        .iter()
        .filter(|s| s["status"] == "SOLD")
        .count();
    assert_eq!(sold, capacity, "every seat sold");
    bought.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sell_exactly_the_capacity_through_nats_and_redis() {
    let cluster = Arc::new(Cluster::start(2, 11).await);
    let event = cluster.event(2, 10).await;
    let bought = rush(cluster.clone(), &event, 200, 20).await;
    assert_eq!(bought, 20, "every seat sold exactly once");
    assert!(cluster.metric("commit_queue_published_total").await >= 20.0);
    assert!(
        cluster.metric("hold_gate_refused_total").await > 0.0,
        "the gate turned some buyers away"
    );
    assert_eq!(cluster.metric("hold_gate_bypassed_total").await, 0.0);
    cluster.verify().await;
    cluster.drop_stream().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_flushed_mid_rush_still_sells_exactly_the_capacity() {
    let db = 12;
    let cluster = Arc::new(Cluster::start(2, db).await);
    let event = cluster.event(2, 10).await;
    let stop = Arc::new(AtomicBool::new(false));
    let flusher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = redis::Client::open(redis_url(db)).expect("redis");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis connection");
            let mut flushes = 0;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(30)).await;
                // This test's Redis database only: other tests may be using others.
                let () = redis::cmd("FLUSHDB")
                    .query_async(&mut conn)
                    .await
                    .expect("flush");
                flushes += 1;
            }
            flushes
        })
    };
    let bought = rush(cluster.clone(), &event, 200, 20).await;
    stop.store(true, Ordering::SeqCst);
    assert!(flusher.await.expect("flusher") > 0);
    assert_eq!(bought, 20, "every seat sold exactly once");
    cluster.verify().await;
    cluster.drop_stream().await;
}
