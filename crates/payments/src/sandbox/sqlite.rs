//! The sandbox ledger in a SQLite file of its own (beside, never inside, the booking
//! database). One connection, used on tokio's blocking pool; every write is an `IMMEDIATE`
//! transaction, so several processes opening the same file still never record two payments
//! for one key: the primary key decides, not our mutex.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boxoffice_domain::payments::PaymentError;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use super::SandboxError;
use super::ledger::{Op, Record, Status, decide, unavailable};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS payments (
    idempotency_key       TEXT PRIMARY KEY,
    provider_ref          TEXT NOT NULL UNIQUE,
    amount_cents          INTEGER NOT NULL,
    currency              TEXT NOT NULL,
    method                TEXT NOT NULL,
    description           TEXT NOT NULL,
    booking_ref           TEXT NOT NULL,
    status                TEXT NOT NULL
        CHECK (status IN ('authorized', 'captured', 'declined', 'voided', 'refunded')),
    decline_reason        TEXT,
    capture_failures_left INTEGER NOT NULL DEFAULT 0,
    created_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
";

const COLUMNS: &str = "idempotency_key, provider_ref, amount_cents, currency, method, \
     description, booking_ref, status, decline_reason, capture_failures_left";

pub(crate) struct SqliteLedger {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLedger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteLedger {
    /// Opens (creating if needed) the ledger file. Blocking: call it off the async runtime.
    pub(crate) fn open(path: &Path) -> Result<Self, SandboxError> {
        let fail = |e: &dyn std::fmt::Display| {
            SandboxError::Ledger(format!("sqlite ledger {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        }
        // Switching a new file to WAL needs the database to itself, and SQLite reports "locked"
        // at once instead of waiting; so processes opening the ledger together take turns.
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".open-lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| fail(&e))?;
        lock.lock().map_err(|e| fail(&e))?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| fail(&e))?;
        // Another process may hold the write lock for a moment; wait rather than fail.
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| fail(&e))?;
        // FULL: a payment the sandbox answered for must survive even a power cut, as it would
        // at a real PSP. The sandbox's write rate is far below where that costs anything.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(|e| fail(&e))?;
        conn.execute_batch(SCHEMA).map_err(|e| fail(&e))?;
        drop(lock);
        Ok(Self {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on tokio's blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, PaymentError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, PaymentError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| PaymentError::Unavailable("sandbox ledger: lock poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| unavailable("task failed", e))?
    }

    pub(crate) async fn insert_or_get(
        &self,
        fresh: Record,
    ) -> Result<(Record, bool), PaymentError> {
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let inserted = tx
                .execute(
                    "INSERT INTO payments (idempotency_key, provider_ref, amount_cents, currency,
                         method, description, booking_ref, status, decline_reason,
                         capture_failures_left)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (idempotency_key) DO NOTHING",
                    params![
                        fresh.key,
                        fresh.provider_ref,
                        fresh.amount_cents,
                        fresh.currency,
                        fresh.method,
                        fresh.description,
                        fresh.booking_ref,
                        fresh.status.as_str(),
                        fresh.decline_reason,
                        fresh.capture_failures_left,
                    ],
                )
                .map_err(sql)?
                == 1;
            let out = if inserted {
                fresh
            } else {
                select_by_key(&tx, &fresh.key)?.ok_or_else(|| {
                    PaymentError::Unavailable("sandbox ledger: payment vanished".into())
                })?
            };
            tx.commit().map_err(sql)?;
            Ok((out, inserted))
        })
        .await
    }

    pub(crate) async fn by_key(&self, key: &str) -> Result<Option<Record>, PaymentError> {
        let key = key.to_owned();
        self.with_conn(move |conn| select_by_key(conn, &key)).await
    }

    pub(crate) async fn by_ref(&self, provider_ref: &str) -> Result<Option<Record>, PaymentError> {
        let provider_ref = provider_ref.to_owned();
        self.with_conn(move |conn| select_by(conn, "provider_ref", &provider_ref))
            .await
    }

    pub(crate) async fn apply(&self, provider_ref: &str, op: Op) -> Result<(), PaymentError> {
        let provider_ref = provider_ref.to_owned();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let rec = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM payments WHERE provider_ref = ?1"),
                    [&provider_ref],
                    read_row,
                )
                .optional()
                .map_err(sql)?
                .ok_or_else(|| PaymentError::Rejected(format!("no such payment: {provider_ref}")))?
                .map_err(|e| PaymentError::Unavailable(e.to_string()))?;
            let decision = decide(op, &rec);
            if let Some(change) = decision.change {
                tx.execute(
                    "UPDATE payments
                     SET status = ?2, capture_failures_left = ?3,
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE provider_ref = ?1",
                    params![
                        provider_ref,
                        change.status.as_str(),
                        change.capture_failures_left
                    ],
                )
                .map_err(sql)?;
            }
            tx.commit().map_err(sql)?;
            decision.result
        })
        .await
    }
}

fn select_by_key(conn: &Connection, key: &str) -> Result<Option<Record>, PaymentError> {
    select_by(conn, "idempotency_key", key)
}

/// The payment whose unique `column` (a constant, never input) holds `value`.
fn select_by(
    conn: &Connection,
    column: &'static str,
    value: &str,
) -> Result<Option<Record>, PaymentError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM payments WHERE {column} = ?1"),
        [value],
        read_row,
    )
    .optional()
    .map_err(sql)?
    .transpose()
    .map_err(|e| PaymentError::Unavailable(e.to_string()))
}

/// A row as a [`Record`]; the inner error reports a status this code does not know.
fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<Record, String>> {
    let status: String = row.get(7)?;
    let Some(status) = Status::parse(&status) else {
        return Ok(Err(format!("sandbox ledger: unknown status {status:?}")));
    };
    Ok(Ok(Record {
        key: row.get(0)?,
        provider_ref: row.get(1)?,
        amount_cents: row.get(2)?,
        currency: row.get(3)?,
        method: row.get(4)?,
        description: row.get(5)?,
        booking_ref: row.get(6)?,
        status,
        decline_reason: row.get(8)?,
        capture_failures_left: row.get(9)?,
    }))
}

fn sql(e: rusqlite::Error) -> PaymentError {
    unavailable("sqlite", e)
}
