//! Transfers racing over real HTTP against real server processes, on both backends, each
//! followed by `boxoffice verify`: the recipient accepting while the sender cancels and gives
//! the ticket to someone else, twice at once, and while the ticket is scanned at the door.
//! Every ticket ends with exactly one outcome.

mod common;

use std::sync::Arc;
use std::time::Duration;

use boxoffice_api::auth::{Role, Secret, mint_hs256};
use boxoffice_store_postgres::testing::TestDatabase;
use common::{SECRET, Server, boxoffice};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Server processes over one store.
struct Cluster {
    nodes: Vec<Server>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    _db: Option<TestDatabase>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = match backend {
            Backend::Postgres => Some(TestDatabase::create().await),
            Backend::Sqlite => None,
        };
        let mut env: Vec<(String, String)> = vec![("BOXOFFICE_JWT_SECRET".into(), SECRET.into())];
        if let Some(db) = &db {
            env.push(("BOXOFFICE_DATABASE_URL".into(), db.url.clone()));
        }
        let mut cluster = Self {
            nodes: Vec::new(),
            env,
            dir,
            _db: db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        };
        // Two nodes on PostgreSQL (nodes share the ticket key through the database); SQLite
        // nodes share one data directory, so one is enough.
        let nodes = if backend == Backend::Postgres { 2 } else { 1 };
        for i in 0..nodes {
            let data = if cluster._db.is_some() {
                cluster.dir.path().join(format!("node-{i}"))
            } else {
                cluster.dir.path().to_owned()
            };
            let env = cluster.env();
            cluster.nodes.push(Server::start(&data, &env));
        }
        cluster
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
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

    async fn post(&self, node: usize, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(node, path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    async fn get(&self, node: usize, path: &str, token: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(node, path)).bearer_auth(token))
            .await
    }

    async fn delete(&self, node: usize, path: &str, token: &str) -> (u16, Value) {
        self.send(self.http.delete(self.url(node, path)).bearer_auth(token))
            .await
    }

    /// A seated event; returns its id.
    async fn event(&self) -> String {
        let body = json!({
            "name": "Transfer Night", "category": "concert", "startsAt": "2099-06-01T19:30:00Z",
            "currency": "USD",
            "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                      "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
            "sections": [{"name": "Floor", "rows": 4, "seatsPerRow": 10, "priceCents": 10000}],
            "policies": {"maxTicketsPerCustomer": 40}
        });
        let org = self.token("org", &[Role::Organizer]);
        let (status, e) = self.post(0, "/v1/events", &org, &body).await;
        assert_eq!(status, 201, "{e}");
        e["eventId"].as_str().expect("id").to_owned()
    }

    /// Buys `seats` for `token`; returns the tickets.
    async fn buy(&self, token: &str, event: &str, seats: &[String]) -> Vec<Value> {
        let (status, b) = self
            .post(
                0,
                "/v1/attempt",
                token,
                &json!({"eventId": event, "seatIds": seats}),
            )
            .await;
        assert_eq!(status, 201, "{b}");
        let booking = b["bookingId"].as_str().expect("id");
        let (status, paid) = self
            .send(
                self.http
                    .post(self.url(0, "/v1/commit"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", format!("buy-{booking}"))
                    .json(&json!({"bookingId": booking, "paymentMethod": "pm_card_visa"})),
            )
            .await;
        assert_eq!(status, 200, "{paid}");
        paid["tickets"].as_array().expect("tickets").clone()
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

on_every_backend!(accept_races_cancel_retransfer_and_the_door);

const ROUNDS: usize = 24;

/// For each of many tickets at once: the sender offers it to bob; then, all at the same time,
/// bob accepts (twice), the sender cancels and offers it to carol instead, and (every third
/// ticket) a scanner checks it in at the door. Exactly one of these wins for each ticket:
/// - bob's accept: one accept is 200, the other 409; the cancel is 409 `transfer-not-pending`;
///   carol's offer is 409; the old token is refused at the door; bob holds the one live ticket;
/// - the cancel: both accepts are 409; carol's offer is 201;
/// - the scan: the ticket is USED and nobody accepts it.
async fn accept_races_cancel_retransfer_and_the_door(backend: Backend) {
    let cluster = Arc::new(Cluster::start(backend).await);
    let event = cluster.event().await;
    let alice = cluster.token("alice", &[Role::Customer]);
    let bob = cluster.token("bob", &[Role::Customer]);
    let scanner = cluster.token("door", &[Role::Scanner]);
    let seats: Vec<String> = (1..=ROUNDS)
        .map(|i| format!("1-{}-{}", ["A", "B", "C"][i % 3], i / 3 + 1))
        .collect();
    let tickets = cluster.buy(&alice, &event, &seats).await;
    assert_eq!(tickets.len(), ROUNDS);

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
                    Outcome::Accepted
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
                        Outcome::Scanned
                    } else {
                        assert_eq!(cancel_status, 200, "{cancel}");
                        assert_eq!(cancel["status"], "CANCELLED");
                        assert_eq!(again_status, 201, "{again}");
                        assert_eq!(again["toCustomer"], "carol");
                        Outcome::Cancelled
                    }
                }
                _ => panic!("accepted twice: {accept1:?} {accept2:?}"),
            }
        }
    });
    let outcomes = futures_util::future::join_all(rounds).await;

    // Bob holds exactly the tickets he accepted, each replacing one of alice's, now REISSUED.
    let won = outcomes.iter().filter(|o| **o == Outcome::Accepted).count();
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
enum Outcome {
    Accepted,
    Cancelled,
    Scanned,
}
