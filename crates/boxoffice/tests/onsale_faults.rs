//! Faults during a scaled-out on-sale, on real processes: `boxoffice serve` nodes on one
//! PostgreSQL database (a fresh one per test), each test with a private `nats-server -js` and
//! `redis-server` of its own (see `common/services.rs`) that it may kill, restart or flush
//! without disturbing the machine's shared servers.
//!
//! - a node SIGKILLed while the commits it took from NATS are in flight (202 answered, not
//!   confirmed): they complete on the other node when JetStream delivers them again, or on
//!   the killed node when it restarts;
//! - NATS killed and restarted mid-rush: commits answer 202 throughout and complete;
//! - Redis flushed over and over mid-rush, and Redis down mid-rush (then back): holds fall
//!   back to the database and nothing is oversold;
//! - the gate's marks follow the holds: a released or expired hold lets the next buyer in at
//!   once, whatever the Redis TTL says.
//!
//! Every test ends with exactly the capacity sold, every paid booking CONFIRMED, one captured
//! payment per booking at the payment provider (nobody charged twice) and `boxoffice verify`
//! clean.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use boxoffice_api::auth::{Role, Secret, mint_hs256};
use boxoffice_store_postgres::testing::TestDatabase;
use common::services::{PrivateNats, PrivateRedis};
use common::{SECRET, Server, boxoffice};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// Nodes on one database, a private NATS and a private Redis.
struct Cluster {
    nodes: Vec<Option<Server>>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    db: TestDatabase,
    http: reqwest::Client,
    nats_url: String,
    stream: String,
}

impl Cluster {
    async fn start(
        nodes: usize,
        nats: &PrivateNats,
        redis: &PrivateRedis,
        extra: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = TestDatabase::create().await;
        let stream = format!("TEST_{}", uuid::Uuid::new_v4().simple());
        let mut env: Vec<(String, String)> = vec![
            ("BOXOFFICE_JWT_SECRET".into(), SECRET.into()),
            ("BOXOFFICE_DB_POOL_SIZE".into(), "8".into()),
            ("BOXOFFICE_DATABASE_URL".into(), db.url.clone()),
            ("BOXOFFICE_QUEUED_COMMITS".into(), "true".into()),
            ("BOXOFFICE_NATS_URL".into(), nats.url()),
            ("BOXOFFICE_NATS_STREAM".into(), stream.clone()),
            ("BOXOFFICE_REDIS_URL".into(), redis.url()),
        ];
        for (k, v) in extra {
            env.push(((*k).into(), (*v).into()));
        }
        let mut cluster = Self {
            nodes: Vec::new(),
            env,
            dir,
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
            nats_url: nats.url(),
            stream,
        };
        for i in 0..nodes {
            cluster.start_node(i);
        }
        cluster
    }

    /// Starts node `i` (again, after a kill: same data directory, same environment).
    fn start_node(&mut self, i: usize) {
        let data = self.dir.path().join(format!("node-{i}"));
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let node = Server::start(&data, &env);
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, || None);
        }
        self.nodes[i] = Some(node);
    }

    /// SIGKILL of node `i`.
    fn kill_node(&mut self, i: usize) {
        self.nodes[i].take().expect("a running node").kill_hard();
    }

    /// The `n`-th running node (round robin over those alive).
    fn node(&self, n: usize) -> &Server {
        let alive: Vec<&Server> = self.nodes.iter().flatten().collect();
        alive[n % alive.len()]
    }

    fn url(&self, n: usize, path: &str) -> String {
        self.node(n).url(path)
    }

    fn token(&self, sub: &str) -> String {
        mint_hs256(
            &Secret::new(SECRET),
            sub,
            &[Role::Customer],
            Duration::from_secs(3600),
        )
        .expect("token")
    }

    /// Sends, and fails the test on any 5xx: no fault here may turn into a server error.
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        assert!(status < 500, "server error {status}: {body}");
        (status, body)
    }

    async fn event(&self, rows: u32, per_row: u32) -> String {
        let body = json!({
            "name": "Fault Night", "category": "concert", "startsAt": "2099-06-01T19:30:00Z",
            "currency": "USD",
            "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                      "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
            "sections": [{"name": "Floor", "rows": rows, "seatsPerRow": per_row, "priceCents": 10000}],
            "policies": {"maxTicketsPerCustomer": 4}
        });
        let org = mint_hs256(
            &Secret::new(SECRET),
            "org",
            &[Role::Organizer],
            Duration::from_secs(3600),
        )
        .expect("token");
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

    async fn seats(&self, n: usize, event: &str) -> Vec<Value> {
        let (_, map) = self
            .send(
                self.http
                    .get(self.url(n, &format!("/v1/events/{event}/seats"))),
            )
            .await;
        map["seats"].as_array().expect("seats").clone()
    }

    async fn sold(&self, event: &str) -> usize {
        self.seats(0, event)
            .await
            .iter()
            .filter(|s| s["status"] == "SOLD")
            .count()
    }

    async fn hold(&self, n: usize, token: &str, event: &str, seat: &str) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(n, "/v1/attempt"))
                .bearer_auth(token)
                .json(&json!({"eventId": event, "seatIds": [seat]})),
        )
        .await
    }

    async fn commit(
        &self,
        n: usize,
        token: &str,
        key: &str,
        booking: &str,
        method: &str,
    ) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(n, "/v1/commit"))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({"bookingId": booking, "paymentMethod": method})),
        )
        .await
    }

    async fn booking(&self, n: usize, token: &str, booking: &str) -> Value {
        let (status, b) = self
            .send(
                self.http
                    .get(self.url(n, &format!("/v1/booking/{booking}")))
                    .bearer_auth(token),
            )
            .await;
        assert_eq!(status, 200, "{b}");
        b
    }

    /// Waits until the booking is CONFIRMED (it may be PENDING until then, nothing else).
    async fn confirmed(&self, n: usize, token: &str, booking: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let b = self.booking(n, token, booking).await;
            if b["status"] == "CONFIRMED" {
                return b;
            }
            assert_eq!(b["status"], "PENDING", "{b}");
            assert!(
                Instant::now() < deadline,
                "booking {booking} not confirmed within {within:?}: {b}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A counter (or histogram count) from node `n`'s `/metrics`, summed over its labels.
    async fn metric_of(&self, n: usize, name: &str) -> f64 {
        let text = self
            .http
            .get(self.url(n, "/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// A counter summed over every running node.
    async fn metric(&self, name: &str) -> f64 {
        let mut total = 0.0;
        for n in 0..self.nodes.iter().flatten().count() {
            total += self.metric_of(n, name).await;
        }
        total
    }

    fn verify(&self) {
        let dir = self.dir.path().to_str().expect("utf-8").to_owned();
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.push(("BOXOFFICE_DATA_DIR", &dir));
        let out = boxoffice(&["verify"], &env);
        assert!(
            out.status.success(),
            "boxoffice verify found problems:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The payment provider's own ledger (the sandbox's, in this database) agrees with the
    /// sale: exactly one payment per confirmed booking, captured, and no other money taken
    /// (nothing authorized or captured for anyone else). Waits for captures still under way.
    async fn provider_agrees(&self, confirmed: &[String]) {
        let (client, conn) = tokio_postgres::connect(&self.db.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let rows = client
                .query(
                    "SELECT booking_ref, status FROM psp_sandbox.payments \
                     WHERE status IN ('authorized', 'captured')",
                    &[],
                )
                .await
                .expect("the sandbox's ledger");
            let mut by_booking: HashMap<String, Vec<String>> = HashMap::new();
            for r in rows {
                by_booking
                    .entry(r.get::<_, String>(0))
                    .or_default()
                    .push(r.get(1));
            }
            for (booking, payments) in &by_booking {
                assert!(
                    confirmed.contains(booking),
                    "money held for booking {booking}, which is not confirmed: {payments:?}"
                );
                assert_eq!(
                    payments.len(),
                    1,
                    "booking {booking} charged twice: {payments:?}"
                );
            }
            let captured = by_booking.values().filter(|p| p[0] == "captured").count();
            if captured == confirmed.len() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{captured} of {} confirmed bookings captured at the provider: {by_booking:?}",
                confirmed.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until this test's JetStream stream holds no message: every queued commit
    /// acknowledged, none left behind for a worker. (The stream goes with the private server.)
    async fn stream_drains(&self, within: Duration) {
        let config =
            boxoffice_queue_nats::NatsConfig::new(&self.nats_url).with_stream(&self.stream);
        let log = boxoffice_queue_nats::NatsCommitLog::connect(config)
            .await
            .expect("NATS");
        let deadline = Instant::now() + within;
        loop {
            let pending = log.pending().await.expect("stream info");
            if pending == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{pending} queued commits still in the stream after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// How a rush is going, for a test that strikes in the middle of it.
#[derive(Default)]
struct Progress {
    /// Commits answered 202.
    accepted: AtomicUsize,
    /// Bookings seen CONFIRMED.
    confirmed: AtomicUsize,
    /// Set while a service is down (cleared before it is started again).
    outage: AtomicBool,
    /// Holds granted whose request was sent, and answered, while `outage` was set.
    held_in_outage: AtomicUsize,
}

/// One buyer's purchase: who, which booking.
#[derive(Debug, Clone)]
struct Purchase {
    token: String,
    booking: String,
}

/// A rush: `buyers` buyers, each wanting one seat of `event`, `at_once` of them at a time.
struct Rush<'a> {
    event: &'a str,
    buyers: usize,
    at_once: usize,
    /// The payment method every buyer pays with.
    method: &'a str,
    /// Where commits go: this node, or another node than the hold's.
    commit_node: Option<usize>,
    /// Whether buyers wait for CONFIRMED (and go on until every seat is sold).
    wait: bool,
}

impl<'a> Rush<'a> {
    fn new(event: &'a str, buyers: usize) -> Self {
        Self {
            event,
            buyers,
            at_once: 100,
            method: "pm_card_visa",
            commit_node: None,
            wait: true,
        }
    }
}

/// Buyers against every running node: read the seat map, pick a random open seat, hold it
/// (through the gate) on one node, commit (202, through NATS) on another and, if `wait`,
/// wait until the booking is CONFIRMED. A buyer stops when no seat is open and, if `wait`,
/// every seat is sold. Returns the purchases.
async fn rush(cluster: &Cluster, r: Rush<'_>, progress: &Progress) -> Vec<Purchase> {
    let Rush {
        event,
        buyers,
        at_once,
        method,
        commit_node,
        wait,
    } = r;
    let purchases = std::sync::Mutex::new(Vec::new());
    futures_util::stream::iter(0..buyers)
        .for_each_concurrent(at_once, |i| {
            let purchases = &purchases;
            async move {
                let token = cluster.token(&format!("buyer-{i}"));
                let deadline = Instant::now() + Duration::from_secs(180);
                loop {
                    assert!(Instant::now() < deadline, "buyer {i} never finished");
                    let seats = cluster.seats(i, event).await;
                    let open: Vec<&str> = seats
                        .iter()
                        .filter(|s| s["status"] == "OPEN")
                        .map(|s| s["seatId"].as_str().expect("id"))
                        .collect();
                    if open.is_empty() {
                        if !wait || seats.iter().all(|s| s["status"] == "SOLD") {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    let seat = open[rand::random_range(0..open.len())];
                    let sent_in_outage = progress.outage.load(Ordering::SeqCst);
                    let (status, b) = cluster.hold(i, &token, event, seat).await;
                    match status {
                        201 => {
                            if sent_in_outage && progress.outage.load(Ordering::SeqCst) {
                                progress.held_in_outage.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        409 => continue,
                        other => panic!("hold answered {other}: {b}"),
                    }
                    let booking = b["bookingId"].as_str().expect("id").to_owned();
                    let (status, queued) = cluster
                        .commit(
                            commit_node.unwrap_or(i + 1),
                            &token,
                            // One key per purchase (a buyer may come back in a later rush).
                            &format!("k-{i}-{booking}"),
                            &booking,
                            method,
                        )
                        .await;
                    assert_eq!(status, 202, "{queued}");
                    assert_eq!(queued["status"], "PENDING", "{queued}");
                    progress.accepted.fetch_add(1, Ordering::SeqCst);
                    purchases.lock().expect("purchases").push(Purchase {
                        token: token.clone(),
                        booking: booking.clone(),
                    });
                    if wait {
                        let done = cluster
                            .confirmed(i, &token, &booking, Duration::from_secs(150))
                            .await;
                        assert_eq!(done["tickets"].as_array().map(Vec::len), Some(1), "{done}");
                        progress.confirmed.fetch_add(1, Ordering::SeqCst);
                    }
                    return;
                }
            }
        })
        .await;
    purchases.into_inner().expect("purchases")
}

/// Waits until `cond` holds (polled), failing with `what` after `within`.
async fn until<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every purchase is confirmed with one ticket, exactly `capacity` seats are sold, the
/// provider took each buyer's money once, the queue is drained and `verify` is clean.
async fn all_settled(cluster: &Cluster, event: &str, purchases: &[Purchase], capacity: usize) {
    assert_eq!(purchases.len(), capacity, "one purchase per seat");
    for (n, p) in purchases.iter().enumerate() {
        let b = cluster
            .confirmed(n, &p.token, &p.booking, Duration::from_secs(150))
            .await;
        assert_eq!(b["tickets"].as_array().map(Vec::len), Some(1), "{b}");
    }
    assert_eq!(
        cluster.sold(event).await,
        capacity,
        "exactly the capacity sold"
    );
    let ids: Vec<String> = purchases.iter().map(|p| p.booking.clone()).collect();
    cluster.provider_agrees(&ids).await;
    cluster.stream_drains(Duration::from_secs(120)).await;
    cluster.verify();
}

// ---------------------------------------------------------------------------------------------
// Two nodes, no fault: the baseline
// ---------------------------------------------------------------------------------------------

/// Two nodes on one database, Redis and NATS sell one event (as `scaled.rs` does, here also
/// checked at the provider): holds and commits alternate between the nodes, every purchase
/// is settled once by a worker pulling from the shared stream, every buyer is charged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sell_one_event_and_charge_every_buyer_once() {
    const CAPACITY: usize = 40;
    let nats = PrivateNats::start();
    let redis = PrivateRedis::start();
    let cluster = Cluster::start(2, &nats, &redis, &[]).await;
    let event = cluster.event(4, 10).await;
    let purchases = rush(&cluster, Rush::new(&event, 150), &Progress::default()).await;
    all_settled(&cluster, &event, &purchases, CAPACITY).await;
    assert_eq!(
        cluster.metric("commits_queued_settled_total").await,
        CAPACITY as f64,
        "every purchase settled by a queue worker, none left to the reconciler"
    );
    assert!(
        cluster.metric("hold_gate_refused_total").await > 0.0,
        "the gate turned buyers away"
    );
    assert_eq!(cluster.metric("hold_gate_bypassed_total").await, 0.0);
}

// ---------------------------------------------------------------------------------------------
// A node killed with commits queued
// ---------------------------------------------------------------------------------------------

/// The payment provider hangs on every new purchase (`pm_card_timeout`: the sandbox records
/// the authorization, then answers only after `BOXOFFICE_SANDBOX_HANG`), so a commit taken
/// from NATS stays in its worker's hands, unacknowledged, until the provider timeout. The
/// reconciler is kept out of it (`RECONCILE_AFTER` far away): only JetStream can bring back
/// the purchases of a killed node.
const HANGING_PROVIDER: &[(&str, &str)] = &[
    ("BOXOFFICE_SANDBOX_HANG", "600s"),
    ("BOXOFFICE_PROVIDER_TIMEOUT", "8s"),
    ("BOXOFFICE_RECONCILE_AFTER", "1h"),
];

/// Sells `capacity` seats to 3× as many buyers with every commit sent to node 0, and waits
/// until node 0's workers have taken commits from NATS (they hang at the provider). Returns
/// the purchases, all answered 202 and none confirmed.
async fn commits_in_flight_on_node_0(
    cluster: &Cluster,
    event: &str,
    capacity: usize,
) -> Vec<Purchase> {
    let progress = Progress::default();
    let purchases = rush(
        cluster,
        Rush {
            method: "pm_card_timeout",
            commit_node: Some(0),
            wait: false,
            ..Rush::new(event, capacity * 3)
        },
        &progress,
    )
    .await;
    assert_eq!(
        purchases.len(),
        capacity,
        "every seat held and committed once"
    );
    until(
        "node 0 takes queued commits from NATS",
        Duration::from_secs(30),
        || async move { cluster.metric_of(0, "commit_queue_batch_size_count").await > 0.0 },
    )
    .await;
    let mut pending = 0;
    for p in &purchases {
        let b = cluster.booking(0, &p.token, &p.booking).await;
        assert_eq!(
            b["status"], "PENDING",
            "nothing settles while the provider hangs: {b}"
        );
        pending += 1;
    }
    assert_eq!(pending, capacity);
    purchases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_with_commits_in_flight_they_complete_on_the_other_node() {
    let nats = PrivateNats::start();
    let redis = PrivateRedis::start();
    let mut cluster = Cluster::start(2, &nats, &redis, HANGING_PROVIDER).await;
    let event = cluster.event(2, 5).await;
    let purchases = commits_in_flight_on_node_0(&cluster, &event, 10).await;
    cluster.kill_node(0);
    // Node 1 is all that is left: what node 0 held comes back to it after the ack wait; what
    // node 1 held itself it settles after the provider timeout (the sandbox then answers the
    // same key at once).
    all_settled(&cluster, &event, &purchases, 10).await;
    assert_eq!(
        cluster.metric("commit_queue_dead_letters_total").await,
        0.0,
        "nothing left to the reconciler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_with_commits_in_flight_completes_them_on_restart() {
    let nats = PrivateNats::start();
    let redis = PrivateRedis::start();
    let mut cluster = Cluster::start(1, &nats, &redis, HANGING_PROVIDER).await;
    let event = cluster.event(2, 5).await;
    let purchases = commits_in_flight_on_node_0(&cluster, &event, 10).await;
    cluster.kill_node(0);
    // The same node comes back (same data directory and settings); JetStream delivers it the
    // commits it died holding.
    cluster.start_node(0);
    all_settled(&cluster, &event, &purchases, 10).await;
}

// ---------------------------------------------------------------------------------------------
// NATS restarted mid-rush
// ---------------------------------------------------------------------------------------------

/// Settings for rushes that outlive a fault: a short provider timeout and a reconciler that
/// completes a purchase whose message never reached NATS within seconds.
const QUICK_REPAIR: &[(&str, &str)] = &[
    ("BOXOFFICE_PROVIDER_TIMEOUT", "2s"),
    ("BOXOFFICE_RECONCILE_AFTER", "3s"),
    ("BOXOFFICE_RECONCILE_INTERVAL", "250ms"),
];

/// NATS is killed (SIGKILL) once the first commits are in, and restarted (same port and
/// JetStream store) once a commit has been answered 202 without reaching it. Purchases whose
/// publication failed are completed by the reconciler, messages delivered before the kill are
/// delivered again after it, and commits after the restart flow through NATS again. Here the
/// reconciler and a redelivery often reach one payment on one node at once, which is what
/// exposed a self-deadlock in `InFlight::claim` (the losing claim built its guard eagerly,
/// `then_some`, and dropped it while holding the set's lock: the node stopped answering).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_killed_and_restarted_mid_rush_sells_exactly_the_capacity() {
    const CAPACITY: usize = 40;
    let nats = PrivateNats::start();
    let redis = PrivateRedis::start();
    let cluster = Cluster::start(2, &nats, &redis, QUICK_REPAIR).await;
    let event = cluster.event(4, 10).await;
    let progress = Progress::default();
    // A few buyers at a time, so that commits come before, during and after the outage.
    let rushing = rush(
        &cluster,
        Rush {
            at_once: 20,
            ..Rush::new(&event, 150)
        },
        &progress,
    );
    let (c, progress) = (&cluster, &progress);
    let striking = async move {
        // Early in the rush, so that most commits come during the outage and after it.
        until(
            "the first commits accepted",
            Duration::from_secs(120),
            || async move { progress.accepted.load(Ordering::SeqCst) >= CAPACITY / 8 },
        )
        .await;
        let mut nats = tokio::task::spawn_blocking(move || {
            let mut nats = nats;
            nats.kill();
            nats
        })
        .await
        .expect("kill NATS");
        // Commits go on being accepted (202) while NATS is down: their publication fails.
        until(
            "a commit accepted while NATS is down",
            Duration::from_secs(60),
            || async move { c.metric("commit_queue_publish_failed_total").await >= 1.0 },
        )
        .await;
        let published = c.metric("commit_queue_published_total").await;
        nats = tokio::task::spawn_blocking(move || {
            let mut nats = nats;
            nats.restart();
            nats
        })
        .await
        .expect("restart NATS");
        (nats, published)
    };
    let (purchases, (_nats, published_before_restart)) = tokio::join!(rushing, striking);
    all_settled(&cluster, &event, &purchases, CAPACITY).await;
    // Commits after the restart flow through NATS again. On a loaded machine the rush may sell
    // out before the nodes have reconnected, so buyers of one-seat events go on coming until a
    // commit is published (or the deadline says the nodes never went back to NATS).
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut after = 0;
    while cluster.metric("commit_queue_published_total").await <= published_before_restart {
        assert!(
            std::time::Instant::now() < deadline,
            "commits flow through NATS again after its restart ({after} purchases since)"
        );
        let single = cluster.event(1, 1).await;
        let bought = rush(&cluster, Rush::new(&single, 1), &Progress::default()).await;
        assert_eq!(bought.len(), 1, "the one seat sold");
        after += 1;
    }
    cluster.verify();
}

// ---------------------------------------------------------------------------------------------
// Redis flushed, Redis down
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_flushed_all_mid_rush_sells_exactly_the_capacity() {
    const CAPACITY: usize = 40;
    let nats = PrivateNats::start();
    let redis = Arc::new(PrivateRedis::start());
    let cluster = Cluster::start(2, &nats, &redis, QUICK_REPAIR).await;
    let event = cluster.event(4, 10).await;
    let progress = Progress::default();
    let done = AtomicBool::new(false);
    let rushing = async {
        let p = rush(&cluster, Rush::new(&event, 150), &progress).await;
        done.store(true, Ordering::SeqCst);
        p
    };
    let flushing = async {
        let mut flushes = 0;
        while !done.load(Ordering::SeqCst) {
            let redis = redis.clone();
            tokio::task::spawn_blocking(move || redis.flush_all())
                .await
                .expect("FLUSHALL");
            flushes += 1;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        flushes
    };
    let (purchases, flushes) = tokio::join!(rushing, flushing);
    assert!(flushes > 0);
    all_settled(&cluster, &event, &purchases, CAPACITY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_mid_rush_falls_back_to_the_database_then_gates_again() {
    const CAPACITY: usize = 40;
    let nats = PrivateNats::start();
    let redis = PrivateRedis::start();
    let cluster = Cluster::start(2, &nats, &redis, QUICK_REPAIR).await;
    let event = cluster.event(4, 10).await;
    let progress = Progress::default();
    // A few buyers at a time, so that seats are still open while Redis is down.
    let rushing = rush(
        &cluster,
        Rush {
            at_once: 20,
            ..Rush::new(&event, 150)
        },
        &progress,
    );
    let (c, progress) = (&cluster, &progress);
    let striking = async move {
        until(
            "the first commits accepted",
            Duration::from_secs(120),
            || async move { progress.accepted.load(Ordering::SeqCst) >= CAPACITY / 8 },
        )
        .await;
        let mut redis = tokio::task::spawn_blocking(move || {
            let mut redis = redis;
            redis.kill();
            redis
        })
        .await
        .expect("kill Redis");
        progress.outage.store(true, Ordering::SeqCst);
        // Holds go on, through the database alone: the gate is skipped, and holds asked for
        // and answered while Redis is down are granted.
        until(
            "holds bypass the gate",
            Duration::from_secs(60),
            || async move { c.metric("hold_gate_bypassed_total").await >= 1.0 },
        )
        .await;
        until(
            "holds granted while Redis is down",
            Duration::from_secs(120),
            || async move { progress.held_in_outage.load(Ordering::SeqCst) >= 3 },
        )
        .await;
        progress.outage.store(false, Ordering::SeqCst);
        redis = tokio::task::spawn_blocking(move || {
            let mut redis = redis;
            redis.restart();
            redis
        })
        .await
        .expect("restart Redis");
        redis
    };
    let (purchases, redis) = tokio::join!(rushing, striking);
    all_settled(&cluster, &event, &purchases, CAPACITY).await;

    // Redis is back (empty): the gate is used again. One buyer holds a seat; another's hold of
    // it is refused by the gate (not just the database) once the nodes have reconnected.
    // A fresh one-seat event each try, as the first hold after the restart may still bypass.
    let (first, second) = (cluster.token("after-1"), cluster.token("after-2"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let other = cluster.event(1, 1).await;
        let (status, b) = cluster.hold(0, &first, &other, "1-A-1").await;
        assert_eq!(status, 201, "{b}");
        let refused = cluster.metric("hold_gate_refused_total").await;
        let (status, b) = cluster.hold(1, &second, &other, "1-A-1").await;
        assert_eq!(status, 409, "{b}");
        if cluster.metric("hold_gate_refused_total").await > refused {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gate never refused again after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(redis.keys() >= 1, "the hold's mark is in Redis");
}

// ---------------------------------------------------------------------------------------------
// The gate's marks follow the holds
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn released_and_expired_holds_free_their_seats_in_the_gate_at_once() {
    let nats = PrivateNats::start();
    let redis = PrivateRedis::start();
    let cluster = Cluster::start(
        2,
        &nats,
        &redis,
        &[
            ("BOXOFFICE_HOLD_TTL", "4s"),
            ("BOXOFFICE_SWEEP_INTERVAL", "200ms"),
        ],
    )
    .await;
    let event = cluster.event(1, 4).await;
    let (alice, bob) = (cluster.token("alice"), cluster.token("bob"));

    // Released: the next buyer gets the seat at once, on another node.
    let (status, held) = cluster.hold(0, &alice, &event, "1-A-1").await;
    assert_eq!(status, 201, "{held}");
    let (status, b) = cluster.hold(1, &bob, &event, "1-A-1").await;
    assert_eq!(
        (status, b["code"].as_str()),
        (409, Some("seats-unavailable")),
        "{b}"
    );
    let id = held["bookingId"].as_str().expect("id");
    let (status, b) = cluster
        .send(
            cluster
                .http
                .delete(cluster.url(0, &format!("/v1/booking/{id}")))
                .bearer_auth(&alice),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let (status, b) = cluster.hold(1, &bob, &event, "1-A-1").await;
    assert_eq!(status, 201, "released: {b}");

    // Expired: once the hold's expiresAt has passed, the next buyer gets the seat — the mark
    // lives no longer than the hold it stands for.
    let (status, held) = cluster.hold(0, &alice, &event, "1-A-2").await;
    assert_eq!(status, 201, "{held}");
    let expires = time::OffsetDateTime::parse(
        held["expiresAt"].as_str().expect("expiresAt"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    let left = expires - time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::try_from(left).unwrap_or_default() + Duration::from_millis(20))
        .await;
    let (status, b) = cluster.hold(1, &bob, &event, "1-A-2").await;
    assert_eq!(status, 201, "expired at {expires}: {b}");
    let marks = redis.dump();
    assert!(
        marks
            .iter()
            .all(|(_, v)| v.as_deref() != held["bookingId"].as_str()),
        "the expired hold's mark is gone: {marks:?}"
    );
}

/// A seat that goes back on sale before its hold's time is up in any other way than a release
/// (here: the provider refuses the capture, so the confirmed booking is revoked and its seat
/// reopened at once) must not stay blocked by the gate until the mark's TTL. The booking
/// service shares the node's gate and clears the marks of what it revokes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_booking_frees_its_seat_in_the_gate_at_once() {
    let nats = PrivateNats::start();
    let redis = PrivateRedis::start();
    let cluster = Cluster::start(1, &nats, &redis, &[]).await;
    let event = cluster.event(1, 2).await;
    let (alice, bob) = (cluster.token("alice"), cluster.token("bob"));
    let (status, held) = cluster.hold(0, &alice, &event, "1-A-1").await;
    assert_eq!(status, 201, "{held}");
    let id = held["bookingId"].as_str().expect("id");
    let (status, b) = cluster
        .commit(0, &alice, "k-alice", id, "pm_card_captureRefused")
        .await;
    assert_eq!(status, 202, "{b}");
    let (c, token) = (&cluster, alice.as_str());
    until(
        "the booking is revoked",
        Duration::from_secs(60),
        || async move { c.booking(0, token, id).await["status"] == "CANCELLED" },
    )
    .await;
    let event_id = event.as_str();
    until(
        "the seat is on sale again",
        Duration::from_secs(30),
        || async move {
            c.seats(0, event_id)
                .await
                .iter()
                .any(|s| s["seatId"] == "1-A-1" && s["status"] == "OPEN")
        },
    )
    .await;
    let (status, b) = cluster.hold(0, &bob, &event, "1-A-1").await;
    assert_eq!(status, 201, "the reopened seat is refused by the gate: {b}");
    cluster.verify();
}
