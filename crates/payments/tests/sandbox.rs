//! The sandbox PSP's behaviour. Every test runs twice: against a SQLite ledger in a fresh
//! temporary directory and against a PostgreSQL ledger in a fresh database.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use boxoffice_domain::payments::{
    Authorization, PaymentError, PaymentProvider, PaymentRequest, PaymentState,
};
use boxoffice_payments::{Sandbox, SandboxOptions};
use boxoffice_store_postgres::testing::TestDatabase;

/// Where one test's ledger lives, kept alive (and cleaned up) with it.
enum Ledger {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        db: TestDatabase,
    },
}

impl Ledger {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory that does not exist yet: opening creates it.
        let path = dir.path().join("data").join("psp-sandbox.db");
        Ledger::Sqlite { path, _dir: dir }
    }

    async fn postgres() -> Self {
        Ledger::Postgres {
            db: TestDatabase::create().await,
        }
    }

    async fn open_with(&self, options: SandboxOptions) -> Sandbox {
        match self {
            Ledger::Sqlite { path, .. } => Sandbox::sqlite_with(path, options).await,
            Ledger::Postgres { db } => Sandbox::postgres_with(&db.url, options).await,
        }
        .expect("open sandbox")
    }

    async fn open(&self) -> Sandbox {
        self.open_with(SandboxOptions::default()).await
    }

    /// Payments recorded under `key`, counted in the ledger itself.
    async fn rows_for(&self, key: &str) -> i64 {
        match self {
            Ledger::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open ledger file");
                conn.query_row(
                    "SELECT count(*) FROM payments WHERE idempotency_key = ?1",
                    [key],
                    |r| r.get(0),
                )
                .expect("count")
            }
            Ledger::Postgres { db } => {
                let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                let task = tokio::spawn(conn);
                let n = client
                    .query_one(
                        "SELECT count(*) FROM psp_sandbox.payments WHERE idempotency_key = $1",
                        &[&key],
                    )
                    .await
                    .expect("count")
                    .get(0);
                drop(client);
                let _ = task.await;
                n
            }
        }
    }
}

const AMOUNT: i64 = 12_500;

fn request(key: &str, method: &str) -> PaymentRequest {
    PaymentRequest {
        idempotency_key: key.to_owned(),
        amount_cents: AMOUNT,
        currency: "USD".parse().expect("currency"),
        method: method.to_owned(),
        description: "2 × Floor, Taylor Swift | The Eras Tour".to_owned(),
        booking_ref: "bk_0192".to_owned(),
    }
}

async fn approve(psp: &Sandbox, key: &str, method: &str) -> String {
    match psp.authorize(&request(key, method)).await {
        Ok(Authorization::Approved { provider_ref }) => provider_ref,
        other => panic!("{method} under {key}: expected approval, got {other:?}"),
    }
}

async fn approve_and_capture(psp: &Sandbox, key: &str) -> String {
    let id = approve(psp, key, "pm_card_visa").await;
    psp.capture(&id, &format!("{key}-capture"))
        .await
        .expect("capture");
    id
}

fn assert_rejected(result: Result<(), PaymentError>, what: &str) {
    assert!(
        matches!(result, Err(PaymentError::Rejected(_))),
        "{what}: expected Rejected, got {result:?}"
    );
}

async fn approved_cards_authorize(ledger: &Ledger) {
    let psp = ledger.open().await;
    assert_eq!(psp.name(), "sandbox");
    for method in ["pm_card_visa", "pm_card_mastercard"] {
        let key = format!("key-{method}");
        let id = approve(&psp, &key, method).await;
        assert!(id.starts_with("pi_sbx_"), "{id}");
        assert_eq!(
            psp.lookup(&key).await.unwrap(),
            PaymentState::Authorized {
                provider_ref: id,
                amount_cents: AMOUNT
            }
        );
        assert_eq!(ledger.rows_for(&key).await, 1);
    }
}

async fn declining_cards_decline_with_their_reason(ledger: &Ledger) {
    let psp = ledger.open().await;
    for (method, reason) in [
        ("pm_card_chargeDeclined", "Your card was declined."),
        (
            "pm_card_insufficientFunds",
            "Your card has insufficient funds.",
        ),
        ("pm_card_amex_unknown", "Unsupported payment method."),
        ("", "Unsupported payment method."),
    ] {
        let key = format!("key-{method}");
        assert_eq!(
            psp.authorize(&request(&key, method)).await.unwrap(),
            Authorization::Declined {
                reason: reason.to_owned()
            },
            "{method:?}"
        );
        assert_eq!(psp.lookup(&key).await.unwrap(), PaymentState::Declined);
    }
}

async fn unknown_keys_look_up_as_unknown(ledger: &Ledger) {
    let psp = ledger.open().await;
    assert_eq!(
        psp.lookup("never-seen").await.unwrap(),
        PaymentState::Unknown
    );
    approve(&psp, "seen", "pm_card_visa").await;
    assert_eq!(
        psp.lookup("never-seen").await.unwrap(),
        PaymentState::Unknown
    );
}

async fn replayed_authorization_returns_the_first_outcome(ledger: &Ledger) {
    let psp = ledger.open().await;
    let id = approve(&psp, "k1", "pm_card_visa").await;
    assert_eq!(approve(&psp, "k1", "pm_card_visa").await, id);
    assert_eq!(ledger.rows_for("k1").await, 1);

    let first = psp
        .authorize(&request("k2", "pm_card_chargeDeclined"))
        .await
        .unwrap();
    let again = psp
        .authorize(&request("k2", "pm_card_chargeDeclined"))
        .await
        .unwrap();
    assert!(matches!(first, Authorization::Declined { .. }));
    assert_eq!(again, first);
    assert_eq!(ledger.rows_for("k2").await, 1);

    // Still the first answer after the payment moved on, and nothing moves back.
    psp.capture(&id, "k1-capture").await.unwrap();
    assert_eq!(approve(&psp, "k1", "pm_card_visa").await, id);
    assert!(matches!(
        psp.lookup("k1").await.unwrap(),
        PaymentState::Captured { .. }
    ));
}

async fn key_reused_for_another_request_is_rejected(ledger: &Ledger) {
    let psp = ledger.open().await;
    let id = approve(&psp, "k", "pm_card_visa").await;
    let base = request("k", "pm_card_visa");
    let variants = [
        PaymentRequest {
            amount_cents: AMOUNT + 1,
            ..base.clone()
        },
        PaymentRequest {
            currency: "EUR".parse().unwrap(),
            ..base.clone()
        },
        PaymentRequest {
            method: "pm_card_mastercard".into(),
            ..base.clone()
        },
        PaymentRequest {
            description: "something else".into(),
            ..base.clone()
        },
        PaymentRequest {
            booking_ref: "bk_other".into(),
            ..base.clone()
        },
    ];
    for other in variants {
        let result = psp.authorize(&other).await;
        assert!(
            matches!(result, Err(PaymentError::Rejected(_))),
            "{other:?}: {result:?}"
        );
    }
    assert_eq!(
        psp.lookup("k").await.unwrap(),
        PaymentState::Authorized {
            provider_ref: id,
            amount_cents: AMOUNT
        }
    );
    assert_eq!(ledger.rows_for("k").await, 1);
}

async fn concurrent_authorizations_with_one_key_make_one_payment(ledger: &Ledger) {
    // Two independently opened sandboxes on one ledger stand for two server processes: only
    // the database can keep them from both charging.
    let (a, b) = tokio::join!(ledger.open(), ledger.open());
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let psp = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { psp.authorize(&request("rush", "pm_card_visa")).await })
        })
        .collect();
    let mut refs = Vec::new();
    for call in calls {
        match call.await.expect("task") {
            Ok(Authorization::Approved { provider_ref }) => refs.push(provider_ref),
            other => panic!("expected approval, got {other:?}"),
        }
    }
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), 1, "several payments for one key: {refs:?}");
    assert_eq!(ledger.rows_for("rush").await, 1);
    assert_eq!(
        a.lookup("rush").await.unwrap(),
        PaymentState::Authorized {
            provider_ref: refs.remove(0),
            amount_cents: AMOUNT
        }
    );
}

async fn capture_is_idempotent(ledger: &Ledger) {
    let psp = ledger.open().await;
    let id = approve(&psp, "k", "pm_card_visa").await;
    psp.capture(&id, "cap-1").await.unwrap();
    psp.capture(&id, "cap-1").await.unwrap();
    psp.capture(&id, "cap-2").await.unwrap();
    assert_eq!(
        psp.lookup("k").await.unwrap(),
        PaymentState::Captured {
            provider_ref: id,
            amount_cents: AMOUNT
        }
    );
}

async fn void_is_idempotent(ledger: &Ledger) {
    let psp = ledger.open().await;
    let id = approve(&psp, "k", "pm_card_visa").await;
    psp.void(&id, "void-1").await.unwrap();
    psp.void(&id, "void-1").await.unwrap();
    psp.void(&id, "void-2").await.unwrap();
    assert_eq!(
        psp.lookup("k").await.unwrap(),
        PaymentState::Voided { provider_ref: id }
    );
}

async fn refund_is_idempotent(ledger: &Ledger) {
    let psp = ledger.open().await;
    let id = approve_and_capture(&psp, "k").await;
    psp.refund(&id, AMOUNT, "refund-1").await.unwrap();
    psp.refund(&id, AMOUNT, "refund-1").await.unwrap();
    psp.refund(&id, AMOUNT, "refund-2").await.unwrap();
    assert_eq!(
        psp.lookup("k").await.unwrap(),
        PaymentState::Refunded {
            provider_ref: id,
            amount_cents: AMOUNT
        }
    );
}

async fn illegal_transitions_are_rejected_and_change_nothing(ledger: &Ledger) {
    let psp = ledger.open().await;

    let voided = approve(&psp, "voided", "pm_card_visa").await;
    psp.void(&voided, "v").await.unwrap();
    assert_rejected(psp.capture(&voided, "c").await, "capture a voided payment");
    assert_rejected(
        psp.refund(&voided, AMOUNT, "r").await,
        "refund a voided payment",
    );
    assert_eq!(
        psp.lookup("voided").await.unwrap(),
        PaymentState::Voided {
            provider_ref: voided
        }
    );

    let captured = approve_and_capture(&psp, "captured").await;
    assert_rejected(psp.void(&captured, "v").await, "void a captured payment");
    assert_rejected(
        psp.refund(&captured, AMOUNT - 1, "r").await,
        "refund part of a payment",
    );
    assert_rejected(
        psp.refund(&captured, AMOUNT + 1, "r").await,
        "refund more than was taken",
    );
    assert!(matches!(
        psp.lookup("captured").await.unwrap(),
        PaymentState::Captured { .. }
    ));

    let authorized = approve(&psp, "authorized", "pm_card_visa").await;
    assert_rejected(
        psp.refund(&authorized, AMOUNT, "r").await,
        "refund an uncaptured payment",
    );
    assert!(matches!(
        psp.lookup("authorized").await.unwrap(),
        PaymentState::Authorized { .. }
    ));

    let refunded = approve_and_capture(&psp, "refunded").await;
    psp.refund(&refunded, AMOUNT, "r").await.unwrap();
    assert_rejected(
        psp.capture(&refunded, "c").await,
        "capture a refunded payment",
    );
    assert_rejected(psp.void(&refunded, "v").await, "void a refunded payment");

    assert_rejected(
        psp.capture("pi_sbx_nope", "c").await,
        "capture an unknown ref",
    );
    assert_rejected(psp.void("pi_sbx_nope", "v").await, "void an unknown ref");
    assert_rejected(
        psp.refund("pi_sbx_nope", AMOUNT, "r").await,
        "refund an unknown ref",
    );
}

async fn declined_payments_cannot_be_moved(ledger: &Ledger) {
    let psp = ledger.open().await;
    psp.authorize(&request("k", "pm_card_chargeDeclined"))
        .await
        .unwrap();
    // A decline has no provider ref to address; guessing one must not find anything either.
    assert_rejected(psp.capture("", "c").await, "capture with an empty ref");
    assert_eq!(psp.lookup("k").await.unwrap(), PaymentState::Declined);
}

async fn invalid_requests_are_rejected_and_not_recorded(ledger: &Ledger) {
    let psp = ledger.open().await;
    let long_key = "k".repeat(256);
    for bad in [
        PaymentRequest {
            amount_cents: 0,
            ..request("zero", "pm_card_visa")
        },
        PaymentRequest {
            amount_cents: -100,
            ..request("negative", "pm_card_visa")
        },
        request("", "pm_card_visa"),
        request(&long_key, "pm_card_visa"),
    ] {
        let result = psp.authorize(&bad).await;
        assert!(
            matches!(result, Err(PaymentError::Rejected(_))),
            "{bad:?}: {result:?}"
        );
        assert_eq!(
            psp.lookup(&bad.idempotency_key).await.unwrap(),
            PaymentState::Unknown
        );
    }
}

async fn capture_fails_card_fails_once_then_captures(ledger: &Ledger) {
    let psp = ledger.open().await;
    let id = approve(&psp, "k", "pm_card_captureFails").await;
    let first = psp.capture(&id, "cap").await;
    assert!(
        matches!(&first, Err(e @ PaymentError::Unavailable(_)) if e.outcome_unknown()),
        "{first:?}"
    );
    assert!(matches!(
        psp.lookup("k").await.unwrap(),
        PaymentState::Authorized { .. }
    ));
    psp.capture(&id, "cap").await.expect("the retry captures");
    psp.capture(&id, "cap").await.expect("and stays captured");
    assert_eq!(
        psp.lookup("k").await.unwrap(),
        PaymentState::Captured {
            provider_ref: id,
            amount_cents: AMOUNT
        }
    );
}

async fn timeout_card_hangs_past_the_callers_timeout(ledger: &Ledger) {
    let psp = ledger
        .open_with(SandboxOptions {
            hang: Duration::from_secs(600),
            ..SandboxOptions::default()
        })
        .await;
    let call = tokio::time::timeout(
        Duration::from_secs(1),
        psp.authorize(&request("k", "pm_card_timeout")),
    )
    .await;
    assert!(call.is_err(), "pm_card_timeout answered: {call:?}");
    // Reconciliation finds the authorization by key.
    let found = psp.lookup("k").await.unwrap();
    let PaymentState::Authorized {
        provider_ref,
        amount_cents: AMOUNT,
    } = found
    else {
        panic!("expected an authorization, got {found:?}");
    };
    // A retry with the same key is answered from the ledger, at once.
    let retry = tokio::time::timeout(
        Duration::from_secs(30),
        psp.authorize(&request("k", "pm_card_timeout")),
    )
    .await
    .expect("a replay does not hang");
    assert_eq!(retry.unwrap(), Authorization::Approved { provider_ref });
    assert_eq!(ledger.rows_for("k").await, 1);
}

async fn timeout_card_answers_after_the_configured_hang(ledger: &Ledger) {
    let hang = Duration::from_millis(300);
    let psp = ledger
        .open_with(SandboxOptions {
            hang,
            ..SandboxOptions::default()
        })
        .await;
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        psp.authorize(&request("k", "pm_card_timeout")),
    )
    .await
    .expect("answers once the hang is over")
    .unwrap();
    assert!(
        started.elapsed() >= hang,
        "answered before the hang was over"
    );
    let Authorization::Approved { provider_ref } = answer else {
        panic!("expected approval, got {answer:?}");
    };
    assert_eq!(
        psp.lookup("k").await.unwrap(),
        PaymentState::Authorized {
            provider_ref,
            amount_cents: AMOUNT
        }
    );
}

async fn lost_response_card_charges_and_loses_the_answer(ledger: &Ledger) {
    let psp = ledger.open().await;
    let result = psp.authorize(&request("k", "pm_card_lostResponse")).await;
    match &result {
        Err(e @ PaymentError::Unavailable(_)) => assert!(e.outcome_unknown()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let found = psp.lookup("k").await.unwrap();
    let PaymentState::Authorized {
        provider_ref,
        amount_cents: AMOUNT,
    } = found
    else {
        panic!("expected an authorization, got {found:?}");
    };
    // The retry with the same key gets the answer the first call lost, and no second payment.
    assert_eq!(
        approve(&psp, "k", "pm_card_lostResponse").await,
        provider_ref
    );
    assert_eq!(ledger.rows_for("k").await, 1);
}

async fn ledger_survives_reopening(ledger: &Ledger) {
    let psp = ledger.open().await;
    let authorized = approve(&psp, "authorized", "pm_card_visa").await;
    let captured = approve_and_capture(&psp, "captured").await;
    let voided = approve(&psp, "voided", "pm_card_visa").await;
    psp.void(&voided, "v").await.unwrap();
    let refunded = approve_and_capture(&psp, "refunded").await;
    psp.refund(&refunded, AMOUNT, "r").await.unwrap();
    psp.authorize(&request("declined", "pm_card_chargeDeclined"))
        .await
        .unwrap();
    let flaky = approve(&psp, "flaky", "pm_card_captureFails").await;
    assert!(psp.capture(&flaky, "c").await.is_err());

    let keys = [
        "authorized",
        "captured",
        "voided",
        "refunded",
        "declined",
        "flaky",
        "unknown",
    ];
    let mut before = Vec::new();
    for key in keys {
        before.push(psp.lookup(key).await.unwrap());
    }
    drop(psp);

    let psp = ledger.open().await;
    let mut after = Vec::new();
    for key in keys {
        after.push(psp.lookup(key).await.unwrap());
    }
    assert_eq!(after, before);
    assert_eq!(
        after,
        vec![
            PaymentState::Authorized {
                provider_ref: authorized.clone(),
                amount_cents: AMOUNT
            },
            PaymentState::Captured {
                provider_ref: captured,
                amount_cents: AMOUNT
            },
            PaymentState::Voided {
                provider_ref: voided
            },
            PaymentState::Refunded {
                provider_ref: refunded,
                amount_cents: AMOUNT
            },
            PaymentState::Declined,
            PaymentState::Authorized {
                provider_ref: flaky.clone(),
                amount_cents: AMOUNT
            },
            PaymentState::Unknown,
        ]
    );

    // Payments carry on where they were: the replay still answers, the capture works, and
    // the flaky card's one failure stays used up.
    assert_eq!(
        approve(&psp, "authorized", "pm_card_visa").await,
        authorized
    );
    psp.capture(&authorized, "c").await.unwrap();
    psp.capture(&flaky, "c").await.unwrap();
    assert!(matches!(
        psp.lookup("flaky").await.unwrap(),
        PaymentState::Captured { .. }
    ));
}

/// `retrieve` reads a payment by the sandbox's own reference and follows every move at once.
async fn retrieve_follows_the_payment_by_reference(ledger: &Ledger) {
    let psp = ledger.open().await;
    let id = approve(&psp, "r-capture", "pm_card_visa").await;
    assert_eq!(
        psp.retrieve(&id).await.unwrap(),
        PaymentState::Authorized {
            provider_ref: id.clone(),
            amount_cents: AMOUNT
        }
    );
    psp.capture(&id, "r-capture-c").await.unwrap();
    assert_eq!(
        psp.retrieve(&id).await.unwrap(),
        PaymentState::Captured {
            provider_ref: id.clone(),
            amount_cents: AMOUNT
        }
    );
    psp.refund(&id, AMOUNT, "r-capture-r").await.unwrap();
    assert_eq!(
        psp.retrieve(&id).await.unwrap(),
        PaymentState::Refunded {
            provider_ref: id.clone(),
            amount_cents: AMOUNT
        }
    );

    let voided = approve(&psp, "r-void", "pm_card_visa").await;
    psp.void(&voided, "r-void-v").await.unwrap();
    assert_eq!(
        psp.retrieve(&voided).await.unwrap(),
        PaymentState::Voided {
            provider_ref: voided.clone()
        }
    );
    // The sandbox's lookup is consistent too: no lag to wait out.
    assert_eq!(psp.lookup_lag(), Duration::ZERO);
    assert_eq!(
        psp.lookup("r-void").await.unwrap(),
        psp.retrieve(&voided).await.unwrap()
    );
    assert_rejected(
        psp.retrieve("pi_sbx_missing").await.map(drop),
        "retrieving a reference nobody issued",
    );
}

/// Expands to one `#[tokio::test]` per behaviour and backend, named `<backend>::<behaviour>`.
macro_rules! on_both_ledgers {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::Ledger::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::Ledger::postgres().await).await;
                }
            )*
        }
    };
}

on_both_ledgers!(
    approved_cards_authorize,
    declining_cards_decline_with_their_reason,
    unknown_keys_look_up_as_unknown,
    replayed_authorization_returns_the_first_outcome,
    key_reused_for_another_request_is_rejected,
    concurrent_authorizations_with_one_key_make_one_payment,
    capture_is_idempotent,
    void_is_idempotent,
    refund_is_idempotent,
    illegal_transitions_are_rejected_and_change_nothing,
    declined_payments_cannot_be_moved,
    invalid_requests_are_rejected_and_not_recorded,
    capture_fails_card_fails_once_then_captures,
    timeout_card_hangs_past_the_callers_timeout,
    timeout_card_answers_after_the_configured_hang,
    lost_response_card_charges_and_loses_the_answer,
    ledger_survives_reopening,
    retrieve_follows_the_payment_by_reference,
);

mod postgres_only {
    use super::*;

    fn with_password(url: &str, password: &str) -> String {
        url.replacen("postgres@", &format!("postgres:{password}@"), 1)
    }

    #[tokio::test]
    async fn the_database_password_is_never_shown() {
        let db = TestDatabase::create().await;
        // The test server trusts local connections, so any password gets in.
        let url = with_password(&db.url, "hunter2-ledger");
        assert!(url.contains("hunter2-ledger"), "{url}");
        let psp = Sandbox::postgres(&url).await.expect("open");
        assert!(!format!("{psp:?}").contains("hunter2"), "{psp:?}");

        let unreachable = "postgres://postgres:hunter2-ledger@127.0.0.1:1/nowhere";
        let err = Sandbox::postgres(unreachable).await.unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");

        let err = Sandbox::postgres("postgres://postgres:hunter2-ledger@127.0.0.1:notaport/x")
            .await
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    }

    #[tokio::test]
    async fn schema_lives_apart_from_the_booking_tables() {
        let db = TestDatabase::create().await;
        let psp = Sandbox::postgres(&db.url).await.expect("open");
        approve(&psp, "k", "pm_card_visa").await;
        let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        let tables: Vec<(String, String)> = client
            .query(
                "SELECT table_schema::text, table_name::text FROM information_schema.tables
                 WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(tables, vec![("psp_sandbox".into(), "payments".into())]);
        drop(client);
        let _ = task.await;
    }
}

mod sqlite_only {
    use super::*;

    #[tokio::test]
    async fn the_ledger_is_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("psp-sandbox.db");
        let psp = Sandbox::sqlite(&path).await.expect("open");
        approve(&psp, "k", "pm_card_visa").await;
        assert!(path.is_file());
        assert!(format!("{psp:?}").contains("psp-sandbox.db"));
    }

    #[tokio::test]
    async fn an_unusable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let err = Sandbox::sqlite(dir.path()).await.unwrap_err();
        assert!(err.to_string().contains("sandbox ledger"), "{err}");
    }
}
