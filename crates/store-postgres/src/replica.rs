//! Catalog reads from a streaming replica.
//!
//! With a replica configured, event detail, seat maps and the search indexer's rebuild scan
//! are read from it; holds, commits, bookings, tickets and every write stay on the primary.
//! A monitor task compares the two every [`PROBE_EVERY`]: the WAL position the replica has
//! replayed, and how far behind the primary it is (zero when it has replayed everything the
//! primary had written when probed; otherwise the age of the last transaction it replayed).
//! A replica that does not answer, is not in recovery, or is further behind than the allowed
//! lag is skipped until it is back, and reads go to the primary: never an error.
//!
//! Read-your-writes: after this node writes the catalog (an event created or cancelled), it
//! notes the primary's WAL position, and reads from the replica only once the replica has
//! replayed that far (until then, the primary). An event the replica does not know (created
//! on another node an instant ago) is looked up on the primary too. Seat maps may trail the
//! primary by the replica's lag: they are a picture of availability, and every hold is
//! decided on the primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;

use crate::exec::{Conn, Exec, Statements};
use crate::pg_error;

/// How often the monitor compares replica and primary.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(200);

/// The replica's pool and what the monitor last saw of it.
#[derive(Debug)]
pub(crate) struct Replica {
    pool: Pool,
    statements: Statements,
    max_lag: Duration,
    usable: AtomicBool,
    /// WAL position (bytes) the replica had replayed at the last probe.
    replayed: AtomicU64,
    /// WAL position (bytes) of this node's last catalog write on the primary.
    written: AtomicU64,
}

impl Replica {
    pub(crate) fn new(pool: Pool, statements: Statements, max_lag: Duration) -> Arc<Self> {
        metrics::gauge!("database_replica_usable").set(0.0);
        Arc::new(Self {
            pool,
            statements,
            max_lag,
            usable: AtomicBool::new(false),
            replayed: AtomicU64::new(0),
            written: AtomicU64::new(0),
        })
    }

    /// A connection to the replica when it may serve a catalog read now.
    pub(crate) async fn conn(&self) -> Option<Conn> {
        if !self.usable.load(Ordering::Acquire)
            || self.replayed.load(Ordering::Acquire) < self.written.load(Ordering::Acquire)
        {
            metrics::counter!("database_catalog_reads_total", "from" => "primary").increment(1);
            return None;
        }
        match self.pool.get().await {
            Ok(obj) => {
                metrics::counter!("database_catalog_reads_total", "from" => "replica").increment(1);
                Some(Conn::new(obj, self.statements.clone()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "replica unreachable: reading the primary");
                self.set_usable(false);
                metrics::counter!("database_catalog_reads_total", "from" => "primary").increment(1);
                None
            }
        }
    }

    /// A read the replica could not answer (failed, or did not know the event yet), made
    /// again on the primary.
    pub(crate) fn fell_back(&self) {
        metrics::counter!("database_catalog_reads_total", "from" => "primary_after_replica")
            .increment(1);
    }

    /// Notes the primary's WAL position after a catalog write of this node.
    pub(crate) async fn wrote<C: Exec>(&self, primary: Option<&C>) {
        let at = match primary {
            Some(c) => {
                c.query_one("SELECT (pg_current_wal_insert_lsn() - '0/0')::int8", &[])
                    .await
            }
            None => {
                self.written.store(u64::MAX, Ordering::Release);
                return;
            }
        };
        match at {
            Ok(r) => {
                let at = u64::try_from(r.get::<_, i64>(0)).unwrap_or(0);
                self.written.fetch_max(at, Ordering::AcqRel);
            }
            // Unknown: read the primary until the replica has replayed everything the primary
            // has (the monitor then lowers the mark).
            Err(_) => self.written.store(u64::MAX, Ordering::Release),
        }
    }

    fn set_usable(&self, usable: bool) {
        self.usable.store(usable, Ordering::Release);
        metrics::gauge!("database_replica_usable").set(if usable { 1.0 } else { 0.0 });
    }

    /// One comparison of replica and primary.
    async fn probe(&self, primary: &Pool, primary_statements: &Statements) {
        let seen = async {
            let p = Conn::new(
                primary
                    .get()
                    .await
                    .map_err(|e| format!("primary pool: {e}"))?,
                primary_statements.clone(),
            );
            let head: i64 = p
                .query_one("SELECT (pg_current_wal_lsn() - '0/0')::int8", &[])
                .await
                .map_err(|e| pg_error(e).to_string())?
                .get(0);
            drop(p);
            let r = Conn::new(
                self.pool
                    .get()
                    .await
                    .map_err(|e| format!("replica pool: {e}"))?,
                self.statements.clone(),
            );
            let row = r
                .query_one(
                    "SELECT pg_is_in_recovery(),
                            coalesce((pg_last_wal_replay_lsn() - '0/0')::int8, 0),
                            coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()),
                                     0)::float8",
                    &[],
                )
                .await
                .map_err(|e| pg_error(e).to_string())?;
            let (recovering, replayed, age): (bool, i64, f64) =
                (row.get(0), row.get(1), row.get(2));
            if !recovering {
                return Err("not a replica (not in recovery)".to_owned());
            }
            let lag = if replayed >= head {
                // Everything the primary had when probed, so every write of this node
                // whose position was not learnt (`u64::MAX`) is there too.
                let _ = self.written.compare_exchange(
                    u64::MAX,
                    u64::try_from(head).unwrap_or(0),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                0.0
            } else {
                age.max(0.0)
            };
            Ok::<_, String>((u64::try_from(replayed).unwrap_or(0), lag))
        };
        match tokio::time::timeout(Duration::from_secs(2), seen).await {
            Ok(Ok((replayed, lag))) => {
                self.replayed.store(replayed, Ordering::Release);
                metrics::gauge!("database_replica_lag_seconds").set(lag);
                let usable = lag <= self.max_lag.as_secs_f64();
                if usable != self.usable.load(Ordering::Acquire) {
                    if usable {
                        tracing::info!(lag, "replica serves catalog reads");
                    } else {
                        tracing::warn!(lag, "replica too far behind: reading the primary");
                    }
                }
                self.set_usable(usable);
            }
            Ok(Err(e)) => {
                if self.usable.load(Ordering::Acquire) {
                    tracing::warn!(error = %e, "replica skipped: reading the primary");
                }
                self.set_usable(false);
            }
            Err(_) => {
                if self.usable.load(Ordering::Acquire) {
                    tracing::warn!("replica did not answer in 2 s: reading the primary");
                }
                self.set_usable(false);
            }
        }
    }
}

/// Probes until the store (the last strong reference to the replica) is dropped.
pub(crate) async fn monitor(
    replica: std::sync::Weak<Replica>,
    primary: Pool,
    primary_statements: Statements,
) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(r) = replica.upgrade() else {
            return;
        };
        r.probe(&primary, &primary_statements).await;
    }
}
