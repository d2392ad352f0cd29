//! The sandbox ledger in PostgreSQL, in a schema of its own (`psp_sandbox`), so that every
//! node of a scaled-out deployment talks to one and the same sandbox PSP. It is not part of the
//! booking schema and has no migrations: it is created idempotently at start, and a change to
//! it would need a new table rather than an edit.
//!
//! Its statements are unnamed and typed (`query_typed`: parse, bind and run in one round
//! trip) rather than prepared per connection, so that it works unchanged behind a
//! transaction pooler (pgbouncer in `pool_mode = transaction`), where a prepared statement
//! would not outlive the transaction; and its schema lock is transaction-scoped for the same
//! reason.

use std::time::Duration;

use boxoffice_domain::payments::PaymentError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::Type;
use tokio_postgres::{NoTls, Row};

use super::SandboxError;
use super::ledger::{Op, Record, Status, decide, unavailable};

/// Taken while creating the schema: `CREATE … IF NOT EXISTS` alone races when several nodes
/// start at once (both see no schema, one fails on the catalog's unique index).
const SCHEMA_LOCK: i64 = 0x7073_705f_7362_7800; // "psp_sbx"

const SCHEMA: &str = "
CREATE SCHEMA IF NOT EXISTS psp_sandbox;
CREATE TABLE IF NOT EXISTS psp_sandbox.payments (
    idempotency_key       TEXT PRIMARY KEY,
    provider_ref          TEXT NOT NULL UNIQUE,
    amount_cents          BIGINT NOT NULL,
    currency              TEXT NOT NULL,
    method                TEXT NOT NULL,
    description           TEXT NOT NULL,
    booking_ref           TEXT NOT NULL,
    status                TEXT NOT NULL
        CHECK (status IN ('authorized', 'captured', 'declined', 'voided', 'refunded')),
    decline_reason        TEXT,
    capture_failures_left BIGINT NOT NULL DEFAULT 0,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
";

const COLUMNS: &str = "idempotency_key, provider_ref, amount_cents, currency, method, \
     description, booking_ref, status, decline_reason, capture_failures_left";

pub(crate) struct PgLedger {
    pool: Pool,
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: it is not kept, let alone printed.
        f.debug_struct("PgLedger")
            .field("pool_size", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

impl PgLedger {
    pub(crate) async fn connect(url: &str, pool_size: usize) -> Result<Self, SandboxError> {
        let config: tokio_postgres::Config = url.parse().map_err(|_| SandboxError::InvalidUrl)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| SandboxError::Ledger(format!("postgres ledger pool: {e}")))?;
        let ledger = Self { pool };
        ledger
            .create_schema()
            .await
            .map_err(|e| SandboxError::Ledger(e.to_string()))?;
        Ok(ledger)
    }

    async fn create_schema(&self) -> Result<(), PaymentError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute_typed(
            "SELECT pg_advisory_xact_lock($1)",
            &[(&SCHEMA_LOCK, Type::INT8)],
        )
        .await
        .map_err(pg)?;
        tx.batch_execute(SCHEMA).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, PaymentError> {
        self.pool
            .get()
            .await
            .map_err(|e| unavailable("postgres pool", e))
    }

    pub(crate) async fn insert_or_get(
        &self,
        fresh: Record,
    ) -> Result<(Record, bool), PaymentError> {
        let client = self.client().await?;
        // ON CONFLICT DO NOTHING waits for a concurrent insert of the same key to commit, so
        // of any number of simultaneous callers exactly one inserts and the rest read its row.
        let inserted = client
            .execute_typed(
                "INSERT INTO psp_sandbox.payments (idempotency_key, provider_ref, amount_cents,
                     currency, method, description, booking_ref, status, decline_reason,
                     capture_failures_left)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (idempotency_key) DO NOTHING",
                &[
                    (&fresh.key, Type::TEXT),
                    (&fresh.provider_ref, Type::TEXT),
                    (&fresh.amount_cents, Type::INT8),
                    (&fresh.currency, Type::TEXT),
                    (&fresh.method, Type::TEXT),
                    (&fresh.description, Type::TEXT),
                    (&fresh.booking_ref, Type::TEXT),
                    (&fresh.status.as_str(), Type::TEXT),
                    (&fresh.decline_reason, Type::TEXT),
                    (&fresh.capture_failures_left, Type::INT8),
                ],
            )
            .await
            .map_err(pg)?
            == 1;
        if inserted {
            return Ok((fresh, true));
        }
        let existing = select_by_key(&client, &fresh.key)
            .await?
            .ok_or_else(|| PaymentError::Unavailable("sandbox ledger: payment vanished".into()))?;
        Ok((existing, false))
    }

    pub(crate) async fn by_key(&self, key: &str) -> Result<Option<Record>, PaymentError> {
        let client = self.client().await?;
        select_by_key(&client, key).await
    }

    pub(crate) async fn by_ref(&self, provider_ref: &str) -> Result<Option<Record>, PaymentError> {
        let client = self.client().await?;
        let select = format!("SELECT {COLUMNS} FROM psp_sandbox.payments WHERE provider_ref = $1");
        match client
            .query_typed_opt(&select, &[(&provider_ref, Type::TEXT)])
            .await
            .map_err(pg)?
        {
            Some(row) => read_row(&row).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) async fn apply(&self, provider_ref: &str, op: Op) -> Result<(), PaymentError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let select = format!(
            "SELECT {COLUMNS} FROM psp_sandbox.payments WHERE provider_ref = $1 FOR UPDATE"
        );
        let rec = match tx
            .query_typed_opt(&select, &[(&provider_ref, Type::TEXT)])
            .await
            .map_err(pg)?
        {
            Some(row) => read_row(&row)?,
            None => {
                return Err(PaymentError::Rejected(format!(
                    "no such payment: {provider_ref}"
                )));
            }
        };
        let decision = decide(op, &rec);
        if let Some(change) = decision.change {
            tx.execute_typed(
                "UPDATE psp_sandbox.payments
                 SET status = $2, capture_failures_left = $3, updated_at = now()
                 WHERE provider_ref = $1",
                &[
                    (&provider_ref, Type::TEXT),
                    (&change.status.as_str(), Type::TEXT),
                    (&change.capture_failures_left, Type::INT8),
                ],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        decision.result
    }
}

async fn select_by_key(
    client: &deadpool_postgres::Client,
    key: &str,
) -> Result<Option<Record>, PaymentError> {
    let select = format!("SELECT {COLUMNS} FROM psp_sandbox.payments WHERE idempotency_key = $1");
    match client
        .query_typed_opt(&select, &[(&key, Type::TEXT)])
        .await
        .map_err(pg)?
    {
        Some(row) => read_row(&row).map(Some),
        None => Ok(None),
    }
}

fn read_row(row: &Row) -> Result<Record, PaymentError> {
    let status: String = row.try_get(7).map_err(pg)?;
    let status = Status::parse(&status).ok_or_else(|| {
        PaymentError::Unavailable(format!("sandbox ledger: unknown status {status:?}"))
    })?;
    Ok(Record {
        key: row.try_get(0).map_err(pg)?,
        provider_ref: row.try_get(1).map_err(pg)?,
        amount_cents: row.try_get(2).map_err(pg)?,
        currency: row.try_get(3).map_err(pg)?,
        method: row.try_get(4).map_err(pg)?,
        description: row.try_get(5).map_err(pg)?,
        booking_ref: row.try_get(6).map_err(pg)?,
        status,
        decline_reason: row.try_get(8).map_err(pg)?,
        capture_failures_left: row.try_get(9).map_err(pg)?,
    })
}

fn pg(e: tokio_postgres::Error) -> PaymentError {
    unavailable("postgres", e)
}
