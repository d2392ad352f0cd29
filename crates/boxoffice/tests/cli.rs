//! The binary as a newcomer uses it: `serve` with nothing configured, `token`, `migrate`,
//! `seed`, on the embedded store and on PostgreSQL, as real processes.

mod common;

use std::path::Path;
use std::time::Duration;

use boxoffice_store_postgres::testing::TestDatabase;
use common::{Server, boxoffice_ok as boxoffice};
use serde_json::{Value, json};

fn token(data_dir: &Path, env: &[(&str, &str)], sub: &str, roles: &[&str]) -> String {
    let mut args = vec!["token", "--sub", sub];
    for r in roles {
        args.extend(["--role", r]);
    }
    let mut env = env.to_vec();
    let dir = data_dir.to_str().expect("utf-8 path");
    env.push(("BOXOFFICE_DATA_DIR", dir));
    String::from_utf8(boxoffice(&args, &env).stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

fn event_body() -> Value {
    json!({
        "name": "Eras", "performers": ["Taylor Swift"], "category": "concert",
        "startsAt": "2099-06-01T19:30:00Z", "currency": "USD",
        "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                  "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
        "sections": [{"name": "Floor", "rows": 10, "seatsPerRow": 20, "priceCents": 25000},
                     {"name": "Lawn", "capacity": 100, "priceCents": 5000}]
    })
}

/// Creates an event with `token` and checks its seat map is complete.
async fn create_and_check(base: &str, token: &str) -> String {
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/v1/events"))
        .bearer_auth(token)
        .json(&event_body())
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let event: Value = res.json().await.expect("json");
    let id = event["eventId"].as_str().expect("id").to_owned();
    let map: Value = http
        .get(format!("{base}/v1/events/{id}/seats"))
        .send()
        .await
        .expect("seats")
        .json()
        .await
        .expect("json");
    assert_eq!(map["seats"].as_array().expect("seats").len(), 200);
    assert_eq!(map["sections"][1]["available"], 100);
    id
}

#[tokio::test]
async fn zero_configuration_embedded_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let health: Value = reqwest::get(format!("{}/healthz", server.base))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    assert_eq!(health, json!({"status": "ok"}));
    assert!(data.join("boxoffice.db").exists());
    let secret = data.join("jwt-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret)
            .expect("secret")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret is readable by its owner only");
    }
    let org = token(&data, &[], "org-1", &["organizer", "customer"]);
    let id = create_and_check(&server.base, &org).await;
    assert!(server.terminate().success(), "SIGTERM is a clean shutdown");

    // Restart on the same data directory: same secret, same data.
    let server = Server::start(&data, &[]);
    let res = reqwest::Client::new()
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&org)
        .json(&event_body())
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201, "tokens survive a restart");
    let res = reqwest::get(format!("{}/v1/events/{id}", server.base))
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn postgres_service_with_concurrent_migrations() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("BOXOFFICE_DATABASE_URL", db.url.as_str())];
    // Four nodes migrating one empty database at once: the advisory lock serialises them.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || boxoffice(&["migrate"], &[("BOXOFFICE_DATABASE_URL", &url)]))
        })
        .collect();
    for h in handles {
        h.join().expect("migrate thread");
    }
    let secret = "a-shared-secret-for-all-nodes";
    let env = [env[0], ("BOXOFFICE_JWT_SECRET", secret)];
    let server = Server::start(dir.path(), &env);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{}/readyz", server.base))
        .await
        .expect("readyz")
        .status()
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let org = token(dir.path(), &env, "org-1", &["organizer"]);
    create_and_check(&server.base, &org).await;
    assert!(server.terminate().success());
}

#[tokio::test]
async fn seeding_is_deterministic_and_repeatable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let env = [("BOXOFFICE_DATA_DIR", data)];
    boxoffice(&["seed", "--events", "300", "--seed", "3"], &env);
    // Again: the same events, none added.
    boxoffice(&["seed", "--events", "300", "--seed", "3"], &env);
    let expected = boxoffice::seed::Generator::new(3, time::OffsetDateTime::now_utc()).events(300);
    let server = Server::start(dir.path(), &[]);
    let http = reqwest::Client::new();
    for e in [&expected[0], &expected[150], &expected[299]] {
        let got: Value = http
            .get(format!("{}/v1/events/{}", server.base, e.id))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(got["name"], e.spec.name.as_str());
        assert_eq!(got["venue"]["zipCode"], e.spec.venue.zip_code.as_str());
        let map: Value = http
            .get(format!("{}/v1/events/{}/seats", server.base, e.id))
            .send()
            .await
            .expect("seats")
            .json()
            .await
            .expect("json");
        let available: u64 = map["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .map(|s| s["available"].as_u64().expect("count"))
            .sum();
        assert_eq!(available, u64::from(e.spec.capacity()));
    }
}

/// Searches `base` until `id` is among the hits of `query`, failing after `within`.
async fn search_until_found(base: &str, query: &str, id: &str, within: Duration) {
    let http = reqwest::Client::new();
    let start = std::time::Instant::now();
    loop {
        let res = http
            .get(format!("{base}/v1/events?{query}"))
            .send()
            .await
            .expect("search");
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.expect("json");
        let found = body["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["eventId"] == id);
        if found {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{base}: {id} not found by {query} after {within:?} (total {})",
            body["total"]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn two_nodes_on_one_postgres_both_see_a_new_event_within_a_second() {
    let db = TestDatabase::create().await;
    let secret = "a-shared-secret-for-all-nodes";
    let env = [
        ("BOXOFFICE_DATABASE_URL", db.url.as_str()),
        ("BOXOFFICE_JWT_SECRET", secret),
    ];
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = Server::start(dir_a.path(), &env);
    let b = Server::start(dir_b.path(), &env);
    let org = token(dir_a.path(), &env, "org-1", &["organizer"]);
    // Both indexers have caught up with the (empty) database once they answer a search.
    for base in [&a.base, &b.base] {
        let res = reqwest::get(format!("{base}/v1/events"))
            .await
            .expect("search");
        assert_eq!(res.status(), 200);
    }
    let id = create_and_check(&a.base, &org).await;
    let created = std::time::Instant::now();
    search_until_found(&a.base, "q=eras", &id, Duration::from_secs(1)).await;
    search_until_found(&b.base, "q=eras", &id, Duration::from_secs(1)).await;
    assert!(created.elapsed() < Duration::from_secs(2));
    // Each node has its own index in its own data directory.
    assert!(dir_a.path().join("search-index").join("meta.json").exists());
    assert!(dir_b.path().join("search-index").join("meta.json").exists());
}

#[tokio::test]
async fn embedded_search_rebuilds_for_a_seeded_catalog_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    boxoffice(
        &["seed", "--events", "500", "--seed", "5"],
        &[("BOXOFFICE_DATA_DIR", data)],
    );
    let expected = boxoffice::seed::Generator::new(5, time::OffsetDateTime::now_utc()).events(500);
    let target = expected[100..]
        .iter()
        .find(|e| !e.spec.venue.zip_code.is_empty())
        .expect("a US event");
    let query = format!("zipCode={}&limit=100", target.spec.venue.zip_code);
    let id = target.id.to_string();
    let server = Server::start(dir.path(), &[]);
    // No index yet: the node builds it from the store by itself.
    search_until_found(&server.base, &query, &id, Duration::from_secs(30)).await;
    assert!(server.terminate().success());
    // Restarted, it loads its index and answers the same.
    let server = Server::start(dir.path(), &[]);
    search_until_found(&server.base, &query, &id, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn postgres_nodes_must_share_one_ticket_key() {
    let db = TestDatabase::create().await;
    let secret = "a-shared-secret-for-all-nodes";
    let env = [
        ("BOXOFFICE_DATABASE_URL", db.url.as_str()),
        ("BOXOFFICE_JWT_SECRET", secret),
    ];
    let dirs: Vec<_> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();

    // No key configured on PostgreSQL: refused, with what to do about it.
    let refused = common::serve_refused(
        dirs[0].path(),
        &[env[0], env[1], ("BOXOFFICE_TICKET_KEY_FILE", "")],
    );
    assert!(refused.contains("--ticket-key-file"), "{refused}");
    assert!(!refused.contains(secret), "no secret in errors");
    assert!(
        !dirs[0].path().join("ticket-signing-key.pem").exists(),
        "no node-local key is generated on PostgreSQL"
    );

    // The first node registers its key; a second with the same key joins.
    let a = Server::start(
        dirs[1].path(),
        &[
            env[0],
            env[1],
            ("BOXOFFICE_TICKET_KEY_FILE", common::TICKET_KEY),
        ],
    );
    let b = Server::start(
        dirs[2].path(),
        &[
            env[0],
            env[1],
            ("BOXOFFICE_TICKET_KEY_FILE", common::TICKET_KEY),
        ],
    );
    let keys = |base: String| async move {
        reqwest::get(format!("{base}/.well-known/ticket-keys.json"))
            .await
            .expect("keys")
            .json::<Value>()
            .await
            .expect("json")
    };
    assert_eq!(keys(a.base.clone()).await, keys(b.base.clone()).await);

    // A node with another key would issue tickets the others reject: it refuses to start.
    let refused = common::serve_refused(
        dirs[3].path(),
        &[
            env[0],
            env[1],
            ("BOXOFFICE_TICKET_KEY_FILE", common::OTHER_TICKET_KEY),
        ],
    );
    assert!(
        refused.contains("not this cluster's ticket key"),
        "{refused}"
    );
    // The running nodes are unaffected.
    let res = reqwest::get(format!("{}/healthz", a.base))
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn hs256_is_off_beside_an_identity_provider_unless_allowed() {
    // Nothing listens there: HS256 tokens are judged before any key is fetched.
    let jwks = "http://127.0.0.1:9/.well-known/jwks.json";
    let secret = "a-secret-that-could-mint-any-role";
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let base = [
        ("BOXOFFICE_DATA_DIR", data),
        ("BOXOFFICE_JWT_SECRET", secret),
    ];

    // `boxoffice token` says such a token would not be accepted, instead of printing one.
    let out = common::boxoffice(
        &["token", "--sub", "org-1", "--role", "organizer"],
        &[base[0], base[1], ("BOXOFFICE_JWKS_URL", jwks)],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-hs256-with-jwks"), "{err}");
    assert!(out.stdout.is_empty());
    let allowed = [
        base[0],
        base[1],
        ("BOXOFFICE_JWKS_URL", jwks),
        ("BOXOFFICE_ALLOW_HS256_WITH_JWKS", "true"),
    ];
    let org = token(dir.path(), &allowed, "org-1", &["organizer"]);

    let create = |base: String, token: String| async move {
        reqwest::Client::new()
            .post(format!("{base}/v1/events"))
            .bearer_auth(token)
            .json(&event_body())
            .send()
            .await
            .expect("create")
            .status()
    };
    let server = Server::start(dir.path(), &[base[1], ("BOXOFFICE_JWKS_URL", jwks)]);
    assert_eq!(create(server.base.clone(), org.clone()).await, 401);
    drop(server);
    let server = Server::start(
        dir.path(),
        &[
            base[1],
            ("BOXOFFICE_JWKS_URL", jwks),
            ("BOXOFFICE_ALLOW_HS256_WITH_JWKS", "true"),
        ],
    );
    assert_eq!(create(server.base.clone(), org).await, 201);
}

#[tokio::test]
async fn the_outbox_is_pruned_behind_the_nodes_and_a_new_node_still_finds_everything() {
    let db = TestDatabase::create().await;
    let env = [
        ("BOXOFFICE_DATABASE_URL", db.url.as_str()),
        ("BOXOFFICE_JWT_SECRET", "a-shared-secret-for-all-nodes"),
        ("BOXOFFICE_OUTBOX_PRUNE_INTERVAL", "200ms"),
        ("BOXOFFICE_OUTBOX_MIN_AGE", "0s"),
    ];
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = Server::start(dir_a.path(), &env);
    let org = token(dir_a.path(), &env, "org-1", &["organizer"]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create_and_check(&a.base, &org).await);
    }
    for id in &ids {
        search_until_found(&a.base, "q=eras", id, Duration::from_secs(5)).await;
    }
    // The node records how far its index has come; rows behind it are pruned.
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let node_id = std::fs::read_to_string(dir_a.path().join("node-id")).expect("node id");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", a.base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let pruned: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("outbox_pruned_rows_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        if pruned > 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing pruned: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let readers: Vec<String> = client
        .query("SELECT reader_id FROM feed_readers", &[])
        .await
        .expect("readers")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(readers, vec![node_id.trim().to_owned()]);
    // A node that arrives after the pruning builds its index from the tables: all is there.
    let b = Server::start(dir_b.path(), &env);
    for id in &ids {
        search_until_found(&b.base, "q=eras", id, Duration::from_secs(10)).await;
    }
    // And the first node keeps following the feed.
    let late = create_and_check(&a.base, &org).await;
    search_until_found(&a.base, "q=eras", &late, Duration::from_secs(2)).await;
    search_until_found(&b.base, "q=eras", &late, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn sigterm_after_work_exits_cleanly_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    sigterm_after_work_exits_cleanly(dir.path(), &[]).await;
}

#[tokio::test]
async fn sigterm_after_work_exits_cleanly_on_postgres() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("BOXOFFICE_DATABASE_URL", db.url.as_str()),
        ("BOXOFFICE_JWT_SECRET", "a-shared-secret-for-all-nodes"),
    ];
    sigterm_after_work_exits_cleanly(dir.path(), &env).await;
}

/// A node that has worked (an event created and indexed, a seat held and bought, the sweeper,
/// reconciler and outbox pruner running) and has a live seat map open stops on SIGTERM in
/// order: it exits 0, promptly, and nothing panics on the way (the search indexer used to,
/// once the runtime was going).
async fn sigterm_after_work_exits_cleanly(data: &Path, env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.extend([
        ("BOXOFFICE_LOG", "info"),
        ("NO_COLOR", "1"),
        ("BOXOFFICE_SWEEP_INTERVAL", "100ms"),
        ("BOXOFFICE_RECONCILE_INTERVAL", "100ms"),
        ("BOXOFFICE_OUTBOX_PRUNE_INTERVAL", "100ms"),
    ]);
    let server = Server::start_capturing(data, &env);
    let org = token(data, &env, "org-1", &["organizer"]);
    let buyer = token(data, &env, "buyer-1", &["customer"]);
    let id = create_and_check(&server.base, &org).await;
    search_until_found(&server.base, "q=eras", &id, Duration::from_secs(5)).await;

    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/v1/attempt", server.base))
        .bearer_auth(&buyer)
        .json(&json!({"eventId": id, "seatIds": ["1-A-1"]}))
        .send()
        .await
        .expect("hold");
    assert_eq!(res.status(), 201);
    let hold: Value = res.json().await.expect("json");
    let booking = hold["bookingId"].as_str().expect("booking id");
    let res = http
        .post(format!("{}/v1/commit", server.base))
        .bearer_auth(&buyer)
        .header("Idempotency-Key", "buy-1")
        .json(&json!({"bookingId": booking, "paymentMethod": "pm_card_visa"}))
        .send()
        .await
        .expect("commit");
    assert_eq!(res.status(), 200);
    let paid: Value = res.json().await.expect("json");
    assert_eq!(paid["status"], "CONFIRMED", "{paid}");
    // The indexer has followed the sale.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let found: Value = http
            .get(format!("{}/v1/events?q=eras", server.base))
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("json");
        if found["events"][0]["seatsLeft"] == 299 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{found}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A live seat map is open: event streams end at shutdown, or draining would never finish.
    let stream = http
        .get(format!("{}/v1/events/{id}/seats/events", server.base))
        .send()
        .await
        .expect("seat stream");
    assert_eq!(stream.status(), 200);

    let (status, output) = server.terminate_with_output(Duration::from_secs(15));
    drop(stream);
    assert!(status.success(), "SIGTERM exits 0, not {status}:\n{output}");
    assert!(
        !output.contains("panicked"),
        "nothing panics on shutdown:\n{output}"
    );
    assert!(
        output
            .lines()
            .any(|l| l.ends_with("boxoffice::app: stopped")),
        "the node went through its orderly stop:\n{output}"
    );
    assert!(!output.contains("did not stop in time"), "{output}");
}

/// SIGTERM while the search indexer is at its busiest: rebuilding a seeded catalog from empty
/// (then merging it) while organizers create events and buyers hold seats. The indexer stops
/// between two steps (a merge is awaited, so a stop lands during it too), before the runtime
/// goes: exit 0, promptly, no panic, nothing left behind.
#[tokio::test]
async fn sigterm_while_the_indexer_is_busy_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let env = [("BOXOFFICE_LOG", "info"), ("NO_COLOR", "1")];
    let seed_env = [("BOXOFFICE_DATA_DIR", data.to_str().expect("utf-8 path"))];
    boxoffice(&["seed", "--events", "4000", "--seed", "5"], &seed_env);
    let server = Server::start_capturing(data, &env);
    let org = token(data, &env, "org-1", &["organizer", "customer"]);
    // Writers that keep going until the node is gone.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (base, org) = (server.base.clone(), org.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut done = 0u32;
                loop {
                    let Ok(res) = http
                        .post(format!("{base}/v1/events"))
                        .bearer_auth(&org)
                        .json(&event_body())
                        .send()
                        .await
                    else {
                        return done;
                    };
                    if res.status() != 201 {
                        return done;
                    }
                    let Ok(event) = res.json::<Value>().await else {
                        return done;
                    };
                    let id = event["eventId"].as_str().unwrap_or_default().to_owned();
                    let seat = format!("1-A-{}", 1 + w);
                    let _ = http
                        .post(format!("{base}/v1/attempt"))
                        .bearer_auth(&org)
                        .json(&json!({"eventId": id, "seatIds": [seat]}))
                        .send()
                        .await;
                    done += 1;
                }
            })
        })
        .collect();
    // Once writes are flowing, and before the index holds the whole catalog: SIGTERM.
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let created: Value = http
            .get(format!("{}/v1/events?q=eras", server.base))
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("json");
        if created["total"].as_u64().unwrap_or(0) > 0 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, output) =
        tokio::task::spawn_blocking(move || server.terminate_with_output(Duration::from_secs(15)))
            .await
            .expect("terminate");
    let mut written = 0;
    for w in writers {
        written += w.await.expect("writer");
    }
    assert!(written > 0, "writes were under way:\n{output}");
    assert!(status.success(), "SIGTERM exits 0, not {status}:\n{output}");
    assert!(
        !output.contains("panicked"),
        "nothing panics on shutdown:\n{output}"
    );
    assert!(!output.contains("did not stop in time"), "{output}");
    assert!(
        output
            .lines()
            .any(|l| l.ends_with("boxoffice::app: stopped")),
        "the node went through its orderly stop:\n{output}"
    );
}
