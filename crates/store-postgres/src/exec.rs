//! How statements reach PostgreSQL.
//!
//! Connected directly (or through a session pooler), every statement is prepared once per
//! connection and reused (`prepare_cached`): parsed and planned once. Behind a *transaction*
//! pooler such as pgbouncer in `pool_mode = transaction`, a connection is only ours for the
//! length of one transaction, so a statement prepared on one server connection is missing on
//! the next, or collides with another client's statement of the same name. There the store
//! sends *unnamed* statements, each parsed, bound and run in one round trip
//! (`query_typed`), which need their parameter types up front: the types of each SQL text are
//! learnt once per process by preparing it inside a transaction (so the prepare and its close
//! happen on the same server connection) and kept.
//!
//! [`Conn`] and [`Tx`] wrap a pooled connection and a transaction; both implement [`Exec`], the
//! only way the store's code runs a statement.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Error, IsolationLevel, Row, SimpleQueryMessage};

/// Statement parameters, as tokio-postgres takes them.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// How this store sends statements: prepared and cached per connection (no type cache), or
/// unnamed with the parameter types learnt once per SQL text; and whether their texts are
/// recorded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Statements {
    types: Option<Arc<TypeCache>>,
    log: Option<StatementLog>,
}

impl Statements {
    /// Statements for a connection through a transaction pooler.
    pub(crate) fn unnamed() -> Self {
        Self {
            types: Some(Arc::default()),
            log: None,
        }
    }

    /// The same, recording every statement's text in `log`.
    pub(crate) fn logged(self, log: Option<StatementLog>) -> Self {
        Self { log, ..self }
    }

    fn record(&self, sql: &str) {
        if let Some(log) = &self.log {
            log.push(sql);
        }
    }
}

/// The text of every statement a store sent, in the order sent: tests read it to check which
/// tables a use case touches and how its statements find their rows.
#[derive(Debug, Clone, Default)]
pub struct StatementLog(Arc<std::sync::Mutex<Vec<String>>>);

impl StatementLog {
    fn push(&self, sql: &str) {
        if let Ok(mut v) = self.0.lock() {
            v.push(sql.to_owned());
        }
    }

    /// Everything recorded since the last call, oldest first.
    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// Parameter types by SQL text. SQL texts are a bounded set (the store's own statements, some
/// built per batch size), so the map stays small.
#[derive(Debug, Default)]
pub(crate) struct TypeCache(RwLock<HashMap<Box<str>, Arc<[Type]>>>);

impl TypeCache {
    fn get(&self, sql: &str) -> Option<Arc<[Type]>> {
        self.0.read().ok()?.get(sql).cloned()
    }

    fn put(&self, sql: &str, types: Arc<[Type]>) {
        if let Ok(mut m) = self.0.write() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(sql.into(), types);
        }
    }
}

/// Runs statements. Implemented by [`Conn`] (each statement its own transaction) and [`Tx`].
#[async_trait]
pub(crate) trait Exec: Sync {
    async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error>;
    async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error>;
    async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error>;
    async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error>;
}

/// A pooled connection and the way its statements are sent.
pub(crate) struct Conn {
    obj: deadpool_postgres::Object,
    statements: Statements,
    /// A transaction was opened with [`Conn::begin`] (the change feed's long reads).
    open: AtomicBool,
    /// Unnamed statements only: a describe (`BEGIN`, prepare, close, `COMMIT`) holds it
    /// exclusively, every statement shared, so that no pipelined statement of the same
    /// connection lands inside the describe's transaction and no close lands outside it.
    gate: tokio::sync::RwLock<()>,
}

/// A transaction on a [`Conn`]; rolled back when dropped without [`Tx::commit`].
pub(crate) struct Tx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    statements: &'a Statements,
}

impl Conn {
    /// Shares the gate with other statements (unnamed statements only).
    async fn shared(&self) -> Option<tokio::sync::RwLockReadGuard<'_, ()>> {
        match self.statements.types {
            Some(_) => Some(self.gate.read().await),
            None => None,
        }
    }

    pub(crate) fn new(obj: deadpool_postgres::Object, statements: Statements) -> Self {
        Self {
            obj,
            statements,
            open: AtomicBool::new(false),
            gate: tokio::sync::RwLock::new(()),
        }
    }

    /// Opens a transaction with `begin` (a `BEGIN …` statement) that the caller ends itself.
    pub(crate) async fn begin(&self, begin: &str) -> Result<(), Error> {
        self.obj.batch_execute(begin).await?;
        self.open.store(true, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) async fn transaction(&mut self) -> Result<Tx<'_>, Error> {
        let tx = self.obj.transaction().await?;
        Ok(Tx {
            tx,
            statements: &self.statements,
        })
    }

    /// A `REPEATABLE READ READ ONLY` transaction: one snapshot for several reads (the change
    /// feed's pages, a booking with its seats and tickets).
    pub(crate) async fn read_only_snapshot(&mut self) -> Result<Tx<'_>, Error> {
        let tx = self
            .obj
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        Ok(Tx {
            tx,
            statements: &self.statements,
        })
    }

    pub(crate) async fn simple_query(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
        self.obj.simple_query(sql).await
    }

    pub(crate) async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.obj.batch_execute(sql).await
    }

    /// The parameter types of `sql`, learnt in a transaction (of their own unless one is
    /// open) so that the statement is prepared and closed on one server connection.
    async fn describe(&self, sql: &str) -> Result<Arc<[Type]>, Error> {
        let _alone = self.gate.write().await;
        if self.open.load(Ordering::Relaxed) {
            let stmt = self.obj.prepare(sql).await?;
            return Ok(stmt.params().into());
        }
        self.obj.batch_execute("BEGIN").await?;
        let described = self.obj.prepare(sql).await;
        match described {
            Ok(stmt) => {
                let types: Arc<[Type]> = stmt.params().into();
                // Dropping the statement queues its Close ahead of the COMMIT.
                drop(stmt);
                self.obj.batch_execute("COMMIT").await?;
                Ok(types)
            }
            Err(e) => {
                let _ = self.obj.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }
}

impl<'a> Tx<'a> {
    pub(crate) async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }

    /// The driver's transaction, for what [`Exec`] does not cover (`COPY`).
    pub(crate) fn raw(&self) -> &deadpool_postgres::Transaction<'a> {
        &self.tx
    }

    /// The parameter types of `sql`, prepared and closed inside this transaction.
    async fn describe(&self, sql: &str) -> Result<Arc<[Type]>, Error> {
        let stmt = self.tx.prepare(sql).await?;
        Ok(stmt.params().into())
    }

    /// Statements of a transaction need no gate: a describe happens inside it.
    async fn shared(&self) -> Option<tokio::sync::RwLockReadGuard<'_, ()>> {
        None
    }
}

/// Pairs each parameter with its type, as `query_typed` wants them.
fn typed<'a>(params: Params<'a>, types: &[Type]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().copied().zip(types.iter().cloned()).collect()
}

/// The same [`Exec`] for a connection and a transaction: `$inner` is the field that derefs to
/// the tokio-postgres client or transaction.
macro_rules! exec_impl {
    ($ty:ty, $inner:ident) => {
        impl $ty {
            /// `None` when statements are prepared; else the parameter types of `sql`.
            async fn param_types(&self, sql: &str) -> Result<Option<Arc<[Type]>>, Error> {
                self.statements.record(sql);
                let Some(cache) = &self.statements.types else {
                    return Ok(None);
                };
                if let Some(types) = cache.get(sql) {
                    return Ok(Some(types));
                }
                let types = self.describe(sql).await?;
                cache.put(sql, types.clone());
                Ok(Some(types))
            }
        }

        #[async_trait]
        impl Exec for $ty {
            async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
                match self.param_types(sql).await? {
                    None => {
                        let stmt = self.$inner.prepare_cached(sql).await?;
                        self.$inner.query(&stmt, params).await
                    }
                    Some(t) => {
                        let _shared = self.shared().await;
                        self.$inner.query_typed(sql, &typed(params, &t)).await
                    }
                }
            }

            async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
                match self.param_types(sql).await? {
                    None => {
                        let stmt = self.$inner.prepare_cached(sql).await?;
                        self.$inner.query_one(&stmt, params).await
                    }
                    Some(t) => {
                        let _shared = self.shared().await;
                        self.$inner.query_typed_one(sql, &typed(params, &t)).await
                    }
                }
            }

            async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
                match self.param_types(sql).await? {
                    None => {
                        let stmt = self.$inner.prepare_cached(sql).await?;
                        self.$inner.query_opt(&stmt, params).await
                    }
                    Some(t) => {
                        let _shared = self.shared().await;
                        self.$inner.query_typed_opt(sql, &typed(params, &t)).await
                    }
                }
            }

            async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
                match self.param_types(sql).await? {
                    None => {
                        let stmt = self.$inner.prepare_cached(sql).await?;
                        self.$inner.execute(&stmt, params).await
                    }
                    Some(t) => {
                        let _shared = self.shared().await;
                        self.$inner.execute_typed(sql, &typed(params, &t)).await
                    }
                }
            }
        }
    };
}

exec_impl!(Conn, obj);
exec_impl!(Tx<'_>, tx);
