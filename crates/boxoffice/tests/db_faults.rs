//! Database-side faults on real processes (issue #7, "Fault tests"):
//!
//! - **PostgreSQL restarted mid-rush.** A private PostgreSQL cluster (never the shared test
//!   server, which other tests use in parallel) is stopped and started again while a rush of
//!   buyers holds and pays through a fake Stripe. While the database is down the node answers
//!   every request at once with a clean 503 problem document (with `Retry-After`), never a 500,
//!   a panic or a hang; afterwards everything settles, exactly the sold seats have tickets, no
//!   seat is sold twice, `boxoffice verify` is clean and every payment that holds money at the
//!   PSP belongs to a CONFIRMED booking.
//! - **A search index that lags.** The node's indexer is held back (its feed reads block on a
//!   lock) while buyers book: booking never waits for the index, `/readyz` says the index is
//!   lagging (and stays 200: the node still sells), and once the fault clears search catches up.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boxoffice_api::auth::{Role, Secret, mint_hs256};
use boxoffice_fakepsp::FakePsp;
use boxoffice_store_postgres::testing::TestDatabase;
use common::{SECRET, Server, boxoffice};
use serde_json::{Value, json};

const PRICE: i64 = 5_000;

fn token(sub: &str, roles: &[Role]) -> String {
    mint_hs256(&Secret::new(SECRET), sub, roles, Duration::from_secs(3600)).expect("token")
}

/// Polls `check` until it returns `Some`, failing with `what` and the last `Err` at the
/// deadline.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what} within {within:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A private PostgreSQL cluster.

/// A PostgreSQL cluster of this test's own in a temporary directory, stopped and deleted when
/// dropped (also when the test fails).
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// As root, the server runs as the `postgres` user (initdb refuses root).
    as_postgres: bool,
}

/// Where `initdb` and `pg_ctl` are: `BOXOFFICE_TEST_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`. Fails loudly when there is none: this test must not
/// pass without running.
fn postgres_bin_dir() -> PathBuf {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(dir) = std::env::var("BOXOFFICE_TEST_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            has_tools(&dir),
            "BOXOFFICE_TEST_PG_BIN={} has no initdb and pg_ctl",
            dir.display()
        );
        return dir;
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "this test starts a private PostgreSQL cluster and needs the server binaries \
             (initdb, pg_ctl) in /usr/lib/postgresql/<version>/bin or BOXOFFICE_TEST_PG_BIN; \
             none found (install the postgresql package, as scripts/test.sh does)"
        ),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl PrivatePostgres {
    /// `initdb` and start a cluster on a free port, with a database `boxoffice`.
    async fn start() -> Self {
        let bin = postgres_bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the cluster directory failed");
        }
        let mut me = Self {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        let data = me.data();
        me.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        // A port that was free a moment ago may be taken by now: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            me.port = free_port();
            match me.try_pg_ctl_start() {
                Ok(()) => {
                    me.create_database().await;
                    return me;
                }
                Err(e) => last = e,
            }
        }
        panic!("the private PostgreSQL cluster did not start: {last}");
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn try_pg_ctl_start(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-o", &opts, "-w", "-t", "30", "start"])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }

    fn start_again(&self) {
        if let Err(e) = self.try_pg_ctl_start() {
            panic!("restarting the private PostgreSQL cluster failed: {e}");
        }
    }

    /// A fast shutdown: open transactions are rolled back, connections closed.
    fn stop(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/boxoffice", self.port)
    }

    async fn create_database(&self) {
        let (client, conn) = tokio_postgres::connect(&self.admin_url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the private cluster");
        let task = tokio::spawn(conn);
        client
            .batch_execute("CREATE DATABASE boxoffice")
            .await
            .expect("create database");
        drop(client);
        let _ = task.await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Immediate: nothing of this cluster is kept. The directory goes with `dir`.
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL restarted mid-rush.

/// One answer the node gave (or did not give: status 0).
#[derive(Debug, Clone)]
struct Observed {
    at: Instant,
    what: String,
    status: u16,
    problem_json: bool,
    retry_after: bool,
    body: String,
}

struct Rush {
    node: Server,
    http: reqwest::Client,
    event: String,
    seen: Mutex<Vec<Observed>>,
    confirmed: AtomicUsize,
}

impl Rush {
    async fn call(&self, what: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
        let sent = req.send().await;
        let (status, problem_json, retry_after, body) = match sent {
            Ok(res) => {
                let status = res.status().as_u16();
                let ct = res
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let retry_after = res.headers().contains_key("retry-after");
                let body = res.text().await.unwrap_or_default();
                (
                    status,
                    ct.starts_with("application/problem+json"),
                    retry_after,
                    body,
                )
            }
            // No answer at all (a hang cut by the client's timeout, or a dropped connection).
            Err(e) => (0, false, false, e.to_string()),
        };
        self.seen.lock().expect("seen").push(Observed {
            at: Instant::now(),
            what: what.to_owned(),
            status,
            problem_json,
            retry_after,
            body: body.clone(),
        });
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// One buyer: hold one seat, pay for it, retrying whatever the outage made fail, until the
    /// booking is paid (200), left to the reconciler (202) or the event is sold out. Returns
    /// every booking made.
    async fn buyer(&self, who: String) -> Vec<String> {
        let token = token(&who, &[Role::Customer]);
        let mut bookings = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        'hold: loop {
            assert!(Instant::now() < deadline, "{who} never finished");
            let (status, hold) = self
                .call(
                    "hold",
                    self.http
                        .post(self.node.url("/v1/attempt"))
                        .bearer_auth(&token)
                        .json(&json!({"eventId": self.event, "section": "Floor", "quantity": 1})),
                )
                .await;
            let booking = match (status, hold["type"].as_str().unwrap_or("")) {
                (201, _) => hold["bookingId"].as_str().expect("id").to_owned(),
                (409, t) if t.ends_with("not-enough-seats") => return bookings,
                (409, t) if t.ends_with("seats-contended") => continue,
                (503, _) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                _ => panic!("hold of {who} answered {status}: {hold}"),
            };
            bookings.push(booking.clone());
            let key = format!("pay-{who}-{}", bookings.len());
            loop {
                assert!(Instant::now() < deadline, "{who} never finished paying");
                let (status, reply) = self
                    .call(
                        "commit",
                        self.http
                            .post(self.node.url("/v1/commit"))
                            .bearer_auth(&token)
                            .header("Idempotency-Key", &key)
                            .json(&json!({"bookingId": booking, "paymentMethod": "pm_card_visa"})),
                    )
                    .await;
                let kind = reply["type"].as_str().unwrap_or("").to_owned();
                match status {
                    200 => {
                        self.confirmed.fetch_add(1, Ordering::Relaxed);
                        return bookings;
                    }
                    202 => return bookings,
                    // The first attempt with this key is still unsettled (the database went
                    // away under it): ask again until its answer is stored.
                    409 if kind.ends_with("request-in-progress") => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    409 if kind.ends_with("already-confirmed") => return bookings,
                    // The hold ran out during the outage: start again.
                    410 => continue 'hold,
                    503 => tokio::time::sleep(Duration::from_millis(100)).await,
                    _ => panic!("commit of {who} answered {status}: {reply}"),
                }
            }
        }
    }

    async fn booking(&self, admin: &str, id: &str) -> Value {
        let res = self
            .http
            .get(self.node.url(&format!("/v1/booking/{id}")))
            .bearer_auth(admin)
            .send()
            .await
            .expect("read booking");
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }

    /// `Ok(seats sold)` once every booking is final and the contract holds: each CONFIRMED
    /// booking has one VALID ticket and no other booking has any, the seat map's SOLD seats
    /// are exactly the ticketed ones (none twice), everything that holds money at the PSP is
    /// one CONFIRMED booking's one payment, and `boxoffice verify` is clean. Otherwise what is
    /// still wrong.
    async fn settled(
        &self,
        admin: &str,
        bookings: &[String],
        fake_url: &str,
        db_url: &str,
        data_dir: &str,
    ) -> Result<usize, String> {
        let mut states = HashMap::new();
        for id in bookings {
            let b = self.booking(admin, id).await;
            let status = b["status"].as_str().unwrap_or("?");
            if status == "HOLD" || status == "PENDING" {
                return Err(format!("booking {id} is still {status}"));
            }
            states.insert(id.clone(), b);
        }
        let mut ticketed: HashMap<String, String> = HashMap::new();
        let mut confirmed = HashSet::new();
        for (id, b) in &states {
            let valid: Vec<&Value> = b["tickets"]
                .as_array()
                .map(|t| t.iter().filter(|t| t["status"] == "VALID").collect())
                .unwrap_or_default();
            match b["status"].as_str() {
                Some("CONFIRMED") => {
                    confirmed.insert(id.clone());
                    if valid.len() != 1 {
                        return Err(format!("confirmed booking {id}: {b}"));
                    }
                }
                _ if !valid.is_empty() => {
                    return Err(format!("booking {id} has VALID tickets: {b}"));
                }
                _ => {}
            }
            for t in valid {
                let seat = t["seatId"].as_str().unwrap_or("?").to_owned();
                if let Some(other) = ticketed.insert(seat.clone(), id.clone()) {
                    return Err(format!("seat {seat} sold twice: bookings {other} and {id}"));
                }
            }
        }
        let map: Value = self
            .http
            .get(self.node.url(&format!("/v1/events/{}/seats", self.event)))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let sold: HashSet<String> = map["seats"]
            .as_array()
            .ok_or_else(|| format!("no seat map: {map}"))?
            .iter()
            .filter(|s| s["status"] == "SOLD")
            .map(|s| s["seatId"].as_str().unwrap_or("?").to_owned())
            .collect();
        let with_tickets: HashSet<String> = ticketed.keys().cloned().collect();
        if sold != with_tickets {
            return Err(format!(
                "sold seats without a ticket: {:?}; ticketed seats not sold: {:?}",
                sold.difference(&with_tickets).collect::<Vec<_>>(),
                with_tickets.difference(&sold).collect::<Vec<_>>()
            ));
        }
        let ledger: Value = self
            .http
            .get(format!("{fake_url}/__ledger"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let mut kept: HashMap<String, usize> = HashMap::new();
        for pi in ledger["payment_intents"].as_array().into_iter().flatten() {
            let booking = pi["metadata"]["booking_ref"].as_str().unwrap_or("?");
            let captured = pi["amount_captured"].as_i64().unwrap_or(0);
            let refunded = pi["amount_refunded"].as_i64().unwrap_or(0);
            let holds_money = match pi["status"].as_str() {
                Some("requires_capture") => {
                    return Err(format!(
                        "PSP payment {} is still only authorized (booking {booking})",
                        pi["id"]
                    ));
                }
                Some("succeeded") => refunded < captured,
                _ => false,
            };
            if holds_money {
                if !confirmed.contains(booking) {
                    return Err(format!(
                        "PSP payment {} holds money for booking {booking}, which is {}",
                        pi["id"],
                        states
                            .get(booking)
                            .map_or("unknown", |b| b["status"].as_str().unwrap_or("?"))
                    ));
                }
                *kept.entry(booking.to_owned()).or_default() += 1;
            }
        }
        for id in &confirmed {
            let n = kept.get(id).copied().unwrap_or(0);
            if n != 1 {
                return Err(format!(
                    "confirmed booking {id} has {n} payments keeping money"
                ));
            }
        }
        let out = boxoffice(
            &["verify"],
            &[
                ("BOXOFFICE_DATABASE_URL", db_url),
                ("BOXOFFICE_DATA_DIR", data_dir),
            ],
        );
        if !out.status.success() {
            return Err(format!(
                "boxoffice verify: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(sold.len())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_rush() {
    let started = Instant::now();
    let pg = PrivatePostgres::start().await;
    let fake = FakePsp::start().await.expect("fake PSP");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = pg.url();
    let fake_url = fake.url();
    let env: Vec<(&str, &str)> = vec![
        ("BOXOFFICE_DATABASE_URL", &url),
        ("BOXOFFICE_JWT_SECRET", SECRET),
        // The outage makes the node warn a lot, by design, and trace every 503.
        ("BOXOFFICE_LOG", "error,tower_http=off"),
        ("BOXOFFICE_PAYMENTS", "stripe"),
        ("BOXOFFICE_STRIPE_SECRET_KEY", "sk_test_x"),
        ("BOXOFFICE_STRIPE_API_BASE", &fake_url),
        ("BOXOFFICE_STRIPE_SEARCH_LAG", "0ms"),
        ("BOXOFFICE_PROVIDER_TIMEOUT", "1s"),
        ("BOXOFFICE_RECONCILE_AFTER", "1500ms"),
        ("BOXOFFICE_RECONCILE_INTERVAL", "200ms"),
        ("BOXOFFICE_SWEEP_INTERVAL", "200ms"),
        ("BOXOFFICE_HOLD_TTL", "4s"),
        ("BOXOFFICE_REQUEST_TIMEOUT", "5s"),
    ];
    let node = Server::start(dir.path(), &env);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(128)
        .build()
        .expect("client");
    // Authorizations take a while, so that commits are between their two transactions when
    // the database goes away.
    let res = http
        .post(format!("{fake_url}/__faults"))
        .json(&json!({"latencyMs": 300, "ops": ["create"]}))
        .send()
        .await
        .expect("faults");
    assert_eq!(res.status(), 200);

    let org = token("org", &[Role::Organizer]);
    let admin = token("auditor", &[Role::Admin]);
    let res = http
        .post(node.url("/v1/events"))
        .bearer_auth(&org)
        .json(&json!({
            "name": "Restart Night", "category": "concert", "startsAt": "2099-06-01T19:30:00Z",
            "currency": "USD",
            "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                      "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
            "sections": [{"name": "Floor", "rows": 5, "seatsPerRow": 10, "priceCents": PRICE}],
            "policies": {"maxTicketsPerCustomer": 8}
        }))
        .send()
        .await
        .expect("create event");
    assert_eq!(res.status(), 201);
    let event = res.json::<Value>().await.expect("json")["eventId"]
        .as_str()
        .expect("id")
        .to_owned();

    let rush = Arc::new(Rush {
        node,
        http: http.clone(),
        event: event.clone(),
        seen: Mutex::new(Vec::new()),
        confirmed: AtomicUsize::new(0),
    });
    let buyers: Vec<_> = (0..100)
        .map(|i| {
            let rush = rush.clone();
            tokio::spawn(async move { rush.buyer(format!("fan-{i}")).await })
        })
        .collect();

    // Mid-rush: some sold, many holding or paying.
    eventually("ten bookings confirmed", Duration::from_secs(20), || {
        let n = rush.confirmed.load(Ordering::Relaxed);
        async move {
            if n >= 10 {
                Ok(())
            } else {
                Err(format!("{n} confirmed"))
            }
        }
    })
    .await;
    let outage_from = Instant::now();
    pg.stop();
    // The node notices at once and says so.
    let (status, body) = eventually("/readyz answering 503", Duration::from_secs(10), || {
        let rush = rush.clone();
        async move {
            let (status, body) = rush
                .call("readyz", rush.http.get(rush.node.url("/readyz")))
                .await;
            if status == 503 {
                Ok((status, body))
            } else {
                Err(format!("{status}: {body}"))
            }
        }
    })
    .await;
    assert_eq!(status, 503, "{body}");
    // A request that needs the database, during the outage.
    let (status, body) = rush
        .call(
            "event",
            rush.http
                .get(rush.node.url(&format!("/v1/events/{event}/seats"))),
        )
        .await;
    assert_eq!(status, 503, "a read while the database is down: {body}");
    // Down for a second at least, as a restart of a real server is: buyers keep trying.
    eventually("a second of outage", Duration::from_secs(5), || {
        let elapsed = outage_from.elapsed();
        async move {
            if elapsed >= Duration::from_secs(1) {
                Ok(())
            } else {
                Err(format!("{elapsed:?}"))
            }
        }
    })
    .await;
    pg.start_again();
    let outage_to = Instant::now();
    eprintln!(
        "PostgreSQL was down for {:.1}s",
        (outage_to - outage_from).as_secs_f64()
    );

    let mut bookings = Vec::new();
    for b in buyers {
        bookings.extend(b.await.expect("buyer"));
    }

    // Every answer: never a 500 or no answer; 503 only during the outage (and the moments
    // after, while the pool replaces the connections the restart closed), always as a problem
    // document with Retry-After.
    let grace = Duration::from_secs(5);
    let seen = rush.seen.lock().expect("seen").clone();
    let mut wrong = Vec::new();
    let mut unavailable = 0;
    for o in &seen {
        match o.status {
            503 => {
                unavailable += 1;
                if o.at < outage_from || o.at > outage_to + grace {
                    wrong.push(format!(
                        "{} answered 503 {:.1}s outside the outage",
                        o.what,
                        if o.at < outage_from {
                            (outage_from - o.at).as_secs_f64()
                        } else {
                            (o.at - outage_to).as_secs_f64()
                        }
                    ));
                }
                if !o.problem_json || !o.retry_after {
                    wrong.push(format!(
                        "{} answered 503 without a problem document and Retry-After: {}",
                        o.what, o.body
                    ));
                }
            }
            s if s >= 500 || s == 0 => {
                wrong.push(format!("{} answered {s}: {}", o.what, o.body));
            }
            _ => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} answers wrong:\n  {}",
        wrong.len(),
        seen.len(),
        wrong.join("\n  ")
    );
    assert!(unavailable > 0, "no request saw the outage");
    let mut answers: HashMap<(String, u16), usize> = HashMap::new();
    for o in &seen {
        *answers.entry((o.what.clone(), o.status)).or_default() += 1;
    }
    let mut answers: Vec<_> = answers.into_iter().collect();
    answers.sort();
    eprintln!("answers (request, status) → count: {answers:?}");
    let node = &rush.node;

    // Everything settles (polling: captures and repairs the outage interrupted are retried
    // by the reconciler), and then money, seats and tickets agree.
    let data = dir.path().to_str().expect("utf-8").to_owned();
    let sold = eventually("the rush to settle", Duration::from_secs(25), || {
        rush.settled(&admin, &bookings, &fake_url, &url, &data)
    })
    .await;

    // And search follows the store again (its change-feed listener reconnected).
    let left = 50 - sold;
    eventually(
        "search to show the seats left",
        Duration::from_secs(15),
        || {
            let http = http.clone();
            let url = node.url("/v1/events?q=restart");
            async move {
                let found: Value = http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                match found["events"][0]["seatsLeft"].as_u64() {
                    Some(n) if n as usize == left => Ok(()),
                    other => Err(format!("seatsLeft {other:?}, expected {left}")),
                }
            }
        },
    )
    .await;

    let mut node = Arc::try_unwrap(rush).ok().expect("buyers done").node;
    assert!(
        node.child.try_wait().expect("wait").is_none(),
        "the node died"
    );
    eprintln!(
        "{sold} sold, {} bookings, {unavailable} answers 503 during the outage, {:.1}s in all",
        bookings.len(),
        started.elapsed().as_secs_f64()
    );
    drop(node);
}

// ---------------------------------------------------------------------------------------------
// A search index that lags.

/// `/readyz` as (status, body).
async fn readyz(http: &reqwest::Client, node: &Server) -> (u16, Value) {
    let res = http.get(node.url("/readyz")).send().await.expect("readyz");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The seats left that search shows for the one event named `q`.
async fn seats_left_in_search(http: &reqwest::Client, node: &Server, q: &str) -> Option<u64> {
    let found: Value = http
        .get(node.url(&format!("/v1/events?q={q}")))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    found["events"][0]["seatsLeft"].as_u64()
}

/// The node's indexer is held back — its reads of the change feed wait on a lock another
/// session holds on `feed_identity`, a table only the change feed reads, as behind a long
/// migration — while buyers book. Booking must not notice, `/readyz` must say the index lags
/// (staying ready: the node still sells), and search must catch up once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_index_lags() {
    let started = Instant::now();
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Server::start(
        dir.path(),
        &[
            ("BOXOFFICE_DATABASE_URL", &db.url),
            ("BOXOFFICE_JWT_SECRET", SECRET),
            ("BOXOFFICE_LOG", "error,tower_http=off"),
        ],
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let org = token("org", &[Role::Organizer]);
    let res = http
        .post(node.url("/v1/events"))
        .bearer_auth(&org)
        .json(&json!({
            "name": "Laggard Night", "category": "concert", "startsAt": "2099-06-01T19:30:00Z",
            "currency": "USD",
            "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                      "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
            "sections": [{"name": "Lawn", "capacity": 60, "priceCents": PRICE}],
            "policies": {"maxTicketsPerCustomer": 8}
        }))
        .send()
        .await
        .expect("create event");
    assert_eq!(res.status(), 201);
    let event = res.json::<Value>().await.expect("json")["eventId"]
        .as_str()
        .expect("id")
        .to_owned();
    eventually("the event in search", Duration::from_secs(15), || async {
        match seats_left_in_search(&http, &node, "laggard").await {
            Some(60) => Ok(()),
            other => Err(format!("seatsLeft {other:?}")),
        }
    })
    .await;
    let (status, ready) = readyz(&http, &node).await;
    assert_eq!(
        (status, ready["search"].as_str()),
        (200, Some("current")),
        "{ready}"
    );

    // The fault: the change feed's reads block.
    let (locker, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let conn = tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; LOCK TABLE feed_identity IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let stalled_at = Instant::now();

    // Buyers book as if nothing were wrong.
    let buyers: Vec<_> = (0..30)
        .map(|i| {
            let http = http.clone();
            let hold_url = node.url("/v1/attempt");
            let commit_url = node.url("/v1/commit");
            let event = event.clone();
            tokio::spawn(async move {
                let token = token(&format!("fan-{i}"), &[Role::Customer]);
                let t0 = Instant::now();
                let res = http
                    .post(hold_url)
                    .bearer_auth(&token)
                    .json(&json!({"eventId": event, "section": "Lawn", "quantity": 1}))
                    .send()
                    .await
                    .expect("hold");
                assert_eq!(res.status(), 201, "hold");
                let hold: Value = res.json().await.expect("json");
                let res = http
                    .post(commit_url)
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("pay-{i}"))
                    .json(&json!({"bookingId": hold["bookingId"], "paymentMethod": "pm_card_visa"}))
                    .send()
                    .await
                    .expect("commit");
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                assert_eq!(status, 200, "commit: {body}");
                assert_eq!(body["status"], "CONFIRMED", "{body}");
                t0.elapsed()
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for b in buyers {
        slowest = slowest.max(b.await.expect("buyer"));
    }
    assert!(
        slowest < Duration::from_secs(5),
        "a booking took {slowest:?} while the index was stalled"
    );

    // The index really is behind, and the node says so while staying ready.
    assert_eq!(
        seats_left_in_search(&http, &node, "laggard").await,
        Some(60),
        "the stall did not hold the index back"
    );
    let ready = eventually(
        "/readyz to report the lag",
        Duration::from_secs(15),
        || async {
            match readyz(&http, &node).await {
                (200, r) if r["search"] == "lagging" => Ok(r),
                (status, r) => Err(format!("{status}: {r}")),
            }
        },
    )
    .await;
    let lag = ready["searchLagSeconds"].as_f64().expect("lag");
    assert!(
        lag >= 5.0 && lag <= stalled_at.elapsed().as_secs_f64() + 1.0,
        "reported lag {lag}s after a stall of {:?}",
        stalled_at.elapsed()
    );
    let metrics = http
        .get(node.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("search_index_lag_seconds"),
        "no search_index_lag_seconds in /metrics"
    );

    // The fault clears: search catches up and the node reports the index current again.
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    drop(locker);
    let _ = conn.await;
    eventually("search to catch up", Duration::from_secs(15), || async {
        match seats_left_in_search(&http, &node, "laggard").await {
            Some(30) => Ok(()),
            other => Err(format!("seatsLeft {other:?}")),
        }
    })
    .await;
    eventually(
        "/readyz to report the index current",
        Duration::from_secs(10),
        || async {
            match readyz(&http, &node).await {
                (200, r) if r["search"] == "current" => Ok(()),
                (status, r) => Err(format!("{status}: {r}")),
            }
        },
    )
    .await;

    let data = dir.path().to_str().expect("utf-8").to_owned();
    let out = boxoffice(
        &["verify"],
        &[
            ("BOXOFFICE_DATABASE_URL", &db.url),
            ("BOXOFFICE_DATA_DIR", &data),
        ],
    );
    assert!(
        out.status.success(),
        "boxoffice verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "30 booked in at most {slowest:?} while the index stalled; lag reported {lag}s; \
         {:.1}s in all",
        started.elapsed().as_secs_f64()
    );
}
