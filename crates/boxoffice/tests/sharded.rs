//! Two `boxoffice` nodes on events sharded over two PostgreSQL databases
//! (`BOXOFFICE_DATABASE_URL=a,b`): events spread over both, every node's search index follows
//! both shards' change feeds, a hold on one node and a commit on the other meet on the event's
//! shard, a customer's tickets page gathers both shards, and `boxoffice shard status` and
//! `boxoffice verify` see the whole deployment.

mod common;

use std::time::{Duration, Instant};

use boxoffice_api::auth::{Role, Secret, mint_hs256};
use boxoffice_store_postgres::testing::TestDatabase;
use common::{SECRET, Server, boxoffice};
use serde_json::{Value, json};

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    assert!(status < 500, "server error {status}: {body}");
    (status, body)
}

fn token(sub: &str, roles: &[Role]) -> String {
    mint_hs256(&Secret::new(SECRET), sub, roles, Duration::from_secs(3600)).expect("token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sell_events_sharded_over_two_databases() {
    let (a, b) = tokio::join!(TestDatabase::create(), TestDatabase::create());
    let urls = format!("{},{}", a.url, b.url);
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("BOXOFFICE_JWT_SECRET", SECRET),
        ("BOXOFFICE_DB_POOL_SIZE", "4"),
        ("BOXOFFICE_DATABASE_URL", urls.as_str()),
    ];
    let nodes = [
        Server::start(&dir.path().join("node-0"), &env),
        Server::start(&dir.path().join("node-1"), &env),
    ];
    let http = reqwest::Client::new();
    let org = token("org", &[Role::Organizer]);

    let mut events = Vec::new();
    for i in 0..12 {
        let body = json!({
            "name": format!("Shardwave Night {i}"), "category": "concert",
            "startsAt": "2099-06-01T19:30:00Z", "currency": "USD",
            "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                      "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
            "sections": [{"name": "Floor", "rows": 2, "seatsPerRow": 10, "priceCents": 5000}],
            "policies": {"maxTicketsPerCustomer": 4}
        });
        let (status, e) = send(
            http.post(nodes[i % 2].url("/v1/events"))
                .bearer_auth(&org)
                .json(&body),
        )
        .await;
        assert_eq!(status, 201, "{e}");
        events.push(e["eventId"].as_str().expect("id").to_owned());
    }

    // Each node's index follows both shards: every event is found on each.
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, found) = send(http.get(node.url("/v1/events?q=shardwave&limit=50"))).await;
            if found["total"] == 12 {
                break;
            }
            assert!(Instant::now() < deadline, "search found {found}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Held on one node, paid on the other.
    let fan = token("fan", &[Role::Customer]);
    for (i, event) in events.iter().enumerate().take(6) {
        let (status, held) = send(
            http.post(nodes[i % 2].url("/v1/attempt"))
                .bearer_auth(&fan)
                .json(&json!({"eventId": event, "seatIds": ["1-A-1"]})),
        )
        .await;
        assert_eq!(status, 201, "{held}");
        let (status, paid) = send(
            http.post(nodes[(i + 1) % 2].url("/v1/commit"))
                .bearer_auth(&fan)
                .header("Idempotency-Key", format!("fan-{i}"))
                .json(&json!({"bookingId": held["bookingId"], "paymentMethod": "pm_card_visa"})),
        )
        .await;
        assert_eq!(status, 200, "{paid}");
        assert_eq!(paid["status"], "CONFIRMED");
    }
    // The customer's tickets, from both shards, on either node.
    for node in &nodes {
        let (status, tickets) = send(http.get(node.url("/v1/tickets")).bearer_auth(&fan)).await;
        assert_eq!(status, 200);
        assert_eq!(
            tickets["tickets"].as_array().map(Vec::len),
            Some(6),
            "{tickets}"
        );
    }

    let env = [
        ("BOXOFFICE_DATABASE_URL", urls.as_str()),
        ("BOXOFFICE_DATA_DIR", dir.path().to_str().expect("utf-8")),
    ];
    let status = boxoffice(&["shard", "status"], &env);
    assert!(status.status.success(), "{status:?}");
    let text = String::from_utf8_lossy(&status.stdout);
    let counts: Vec<usize> = text
        .lines()
        .filter_map(|l| l.split(": ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(counts.len(), 2, "{text}");
    assert_eq!(counts.iter().sum::<usize>(), 12, "{text}");
    assert!(
        counts.iter().all(|n| *n > 0),
        "both shards hold events: {text}"
    );
    let verify = boxoffice(&["verify"], &env);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}
