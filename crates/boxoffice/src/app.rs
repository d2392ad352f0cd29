//! Wiring: configuration in, a running service out.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use boxoffice_api::auth::{AuthConfig, Authenticator, Role, Secret};
use boxoffice_api::booking::{BookingConfig, BookingService};
use boxoffice_api::tickets::TicketSigner;
use boxoffice_api::{ApiConfig, AppState};
use boxoffice_domain::feed::{ChangeFeed, Retention};
use boxoffice_domain::payments::PaymentProvider;
use boxoffice_domain::ports::{Clock, Store, SystemClock};
use boxoffice_payments::{Sandbox, SandboxOptions, Stripe, StripeConfig};
use boxoffice_search::{SearchConfig, SearchIndex};
use boxoffice_store_postgres::{ClusterKey, PgOptions, PgStore, Pooler, ShardedStore};
use boxoffice_store_sqlite::SqliteStore;
use rand::RngExt;
use tokio::net::TcpListener;

use crate::cli::{
    DatabasePooler, PaymentArgs, PaymentsArg, SeedArgs, ServeArgs, StoreArgs, TokenArgs,
};
use crate::tls;

/// The store the flags select: PostgreSQL for a `postgres://` URL, otherwise SQLite in the data
/// directory. Either way, migrations are applied before this returns.
pub async fn open_store(args: &StoreArgs) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_store_and_feed(args).await?.0)
}

/// The selected store, and the same store as the change feed the search indexer follows.
pub async fn open_store_and_feed(
    args: &StoreArgs,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn ChangeFeed>)> {
    Ok(open_backend(args).await?.store_and_feed())
}

/// The store the flags select, as its concrete type.
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
    /// Several `--database-url`s: events sharded over them.
    Sharded(ShardedStore),
}

impl Backend {
    fn store_and_feed(&self) -> (Arc<dyn Store>, Arc<dyn ChangeFeed>) {
        match self {
            Backend::Sqlite(s) => (Arc::new(s.clone()), Arc::new(s.clone())),
            Backend::Postgres(s) => (Arc::new(s.clone()), Arc::new(s.clone())),
            Backend::Sharded(s) => (Arc::new(s.clone()), Arc::new(s.clone())),
        }
    }
}

async fn open_backend(args: &StoreArgs) -> anyhow::Result<Backend> {
    match &args.database_url {
        Some(urls) => {
            let urls = list(urls.expose());
            for url in &urls {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    bail!("--database-url must be postgres:// URLs, separated by commas");
                }
            }
            let per_shard =
                |flag: &str, value: &Option<Secret>| -> anyhow::Result<Vec<Option<String>>> {
                    let Some(v) = value else {
                        return Ok(vec![None; urls.len()]);
                    };
                    let v = list(v.expose());
                    if v.len() != urls.len() {
                        bail!(
                            "{flag} must name one URL per --database-url ({} of them)",
                            urls.len()
                        );
                    }
                    Ok(v.into_iter().map(Some).collect())
                };
            let listen = per_shard("--database-listen-url", &args.database_listen_url)?;
            let replicas = per_shard("--database-replica-url", &args.database_replica_url)?;
            let options = |i: usize| PgOptions {
                pool_size: args.db_pool_size,
                group_commit: args.db_group_commit,
                group_window: args.db_group_window,
                pooler: match args.database_pooler {
                    DatabasePooler::None => Pooler::None,
                    DatabasePooler::Transaction => Pooler::Transaction,
                },
                listen_url: listen[i].clone(),
                replica_url: replicas[i].clone(),
                replica_max_lag: args.database_replica_max_lag,
                ..PgOptions::default()
            };
            if urls.len() == 1 {
                let store = PgStore::connect(&urls[0], options(0))
                    .await
                    .context("opening the PostgreSQL store")?;
                tracing::info!("using PostgreSQL");
                return Ok(Backend::Postgres(store));
            }
            let each: Vec<(String, PgOptions)> = urls
                .iter()
                .enumerate()
                .map(|(i, u)| (u.clone(), options(i)))
                .collect();
            let store = ShardedStore::connect_each(&each)
                .await
                .context("opening the sharded PostgreSQL store")?;
            tracing::info!(shards = urls.len(), "using PostgreSQL, events sharded");
            Ok(Backend::Sharded(store))
        }
        None => {
            let path = args.data_dir.join("boxoffice.db");
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await?
                .context("opening the embedded store")?;
            tracing::info!(path = %store.path().display(), "using the embedded SQLite store");
            Ok(Backend::Sqlite(store))
        }
    }
}

/// A comma-separated list, trimmed, without empty items.
fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The HS256 secret: from the flag or environment, else the one kept in the data directory,
/// generated on first use.
pub fn jwt_secret(args: &StoreArgs) -> anyhow::Result<Secret> {
    if let Some(s) = &args.jwt_secret {
        if s.expose().len() < 16 {
            bail!("the JWT secret must be at least 16 characters");
        }
        return Ok(s.clone());
    }
    let path = args.data_dir.join("jwt-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if !s.is_empty() {
            return Ok(Secret::new(s));
        }
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret)?;
    if args.database_url.is_some() {
        tracing::warn!(
            "generated a JWT secret for this node only; nodes sharing a database need the same BOXOFFICE_JWT_SECRET"
        );
    }
    Ok(Secret::new(secret))
}

/// The ticket signing key: from the configured file, else (embedded mode only) the one kept
/// in the data directory, generated on first use.
///
/// On PostgreSQL every node must sign with the same key, or tickets from one node fail at
/// another's door: a key file is required, and its public half is registered in the database
/// by the first node; a node whose key differs refuses to start.
async fn ticket_signer(
    backend: &Backend,
    store: &StoreArgs,
    serve: &ServeArgs,
) -> anyhow::Result<TicketSigner> {
    let databases: Vec<&PgStore> = match backend {
        Backend::Sqlite(_) => return local_ticket_signer(store, serve),
        Backend::Postgres(pg) => vec![pg],
        Backend::Sharded(s) => s.shards().collect(),
    };
    let Some(path) = &serve.ticket_key_file else {
        bail!(
            "on PostgreSQL every node must sign tickets with the same key: pass \
             --ticket-key-file (BOXOFFICE_TICKET_KEY_FILE) with the same Ed25519 PKCS#8 key on \
             every node (make one with `openssl genpkey -algorithm ED25519 -out ticket-key.pem`)"
        );
    };
    let signer = read_ticket_key(path)?;
    // Every shard registers the same key: a ticket is checked by any node.
    for pg in databases {
        match pg
            .claim_cluster_key(TICKET_KEY_PURPOSE, signer.kid(), &signer.public_key())
            .await
            .context("checking the ticket key against the cluster's")?
        {
            ClusterKey::Registered => {
                tracing::info!(
                    key_id = signer.kid(),
                    "registered this cluster's ticket key"
                );
            }
            ClusterKey::Same => {}
            ClusterKey::Different { registered_key_id } => bail!(
                "the ticket key in {} (key id {}) is not this cluster's ticket key (key id {}): \
                 every node sharing the database must use the same --ticket-key-file",
                path.display(),
                signer.kid(),
                registered_key_id
            ),
        }
    }
    Ok(signer)
}

/// What the cluster's ticket key is registered under (see `cluster_keys`).
const TICKET_KEY_PURPOSE: &str = "ticket-signing";

fn read_ticket_key(path: &Path) -> anyhow::Result<TicketSigner> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the ticket key file {}", path.display()))?;
    TicketSigner::from_pem(&pem).with_context(|| format!("reading {}", path.display()))
}

fn local_ticket_signer(store: &StoreArgs, serve: &ServeArgs) -> anyhow::Result<TicketSigner> {
    if let Some(path) = &serve.ticket_key_file {
        return read_ticket_key(path);
    }
    let path = store.data_dir.join("ticket-signing-key.pem");
    if let Ok(pem) = std::fs::read_to_string(&path) {
        return TicketSigner::from_pem(&pem).with_context(|| format!("reading {}", path.display()));
    }
    std::fs::create_dir_all(&store.data_dir)
        .with_context(|| format!("creating {}", store.data_dir.display()))?;
    let (_, pem) = TicketSigner::generate();
    write_private(&path, &pem)?;
    // Read back what is on disk: a concurrent starter may have written its key first.
    let pem = std::fs::read_to_string(&path)?;
    TicketSigner::from_pem(&pem).with_context(|| format!("reading {}", path.display()))
}

/// This data directory's stable id as a change-feed reader (`<data-dir>/node-id`), generated
/// on first use.
fn reader_id(store: &StoreArgs) -> anyhow::Result<String> {
    let path = store.data_dir.join("node-id");
    if let Ok(s) = std::fs::read_to_string(&path)
        && !s.trim().is_empty()
    {
        return Ok(s.trim().to_owned());
    }
    std::fs::create_dir_all(&store.data_dir)
        .with_context(|| format!("creating {}", store.data_dir.display()))?;
    write_private(&path, &uuid::Uuid::new_v4().to_string())?;
    Ok(std::fs::read_to_string(&path)?.trim().to_owned())
}

/// The payment provider the flags select.
pub async fn payment_provider(
    store: &StoreArgs,
    args: &PaymentArgs,
) -> anyhow::Result<Arc<dyn PaymentProvider>> {
    match args.payments {
        PaymentsArg::Sandbox => {
            let options = SandboxOptions {
                hang: args.sandbox_hang,
                ..SandboxOptions::default()
            };
            let sandbox = match &store.database_url {
                // With shards, the sandbox's ledger lives in the first database named.
                Some(urls) => {
                    let urls = list(urls.expose());
                    Sandbox::postgres_with(urls.first().map_or("", String::as_str), options).await
                }
                None => {
                    std::fs::create_dir_all(&store.data_dir)?;
                    Sandbox::sqlite_with(store.data_dir.join("psp-sandbox.db"), options).await
                }
            }
            .context("opening the sandbox payment provider's ledger")?;
            Ok(Arc::new(sandbox))
        }
        PaymentsArg::Stripe => {
            let Some(key) = &args.stripe_secret_key else {
                bail!("--payments stripe needs --stripe-secret-key (BOXOFFICE_STRIPE_SECRET_KEY)");
            };
            tls::check_outgoing_url(&args.stripe_api_base, "--stripe-api-base")?;
            let config = StripeConfig::new(key.expose())
                .with_base_url(&args.stripe_api_base)
                .with_request_timeout(args.provider_timeout)
                .with_search_lag(args.stripe_search_lag)
                .with_connected_accounts(args.stripe_connected_accounts.clone());
            Ok(Arc::new(
                Stripe::new(config).context("configuring the Stripe adapter")?,
            ))
        }
    }
}

/// Writes a file only its owner can read, without ever leaving it readable by others.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(contents.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(())
        }
        // Another process created it first: theirs wins, and we read it back next time.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// Whether HS256 tokens are accepted beside an identity provider's (never by default).
fn auth_config(store: &StoreArgs, serve: &ServeArgs) -> anyhow::Result<AuthConfig> {
    if let Some(url) = &serve.jwks_url {
        tls::check_outgoing_url(url, "--jwks-url")?;
    }
    let auth = AuthConfig {
        hs256_secret: Some(jwt_secret(store)?),
        jwks_url: serve.jwks_url.clone(),
        issuer: serve.jwt_issuer.clone(),
        audience: serve.jwt_audience.clone(),
        allow_hs256_with_jwks: serve.allow_hs256_with_jwks,
    };
    if auth.jwks_url.is_some() && !auth.accepts_hs256() {
        tracing::info!(
            "identity provider configured: HS256 tokens are refused (--allow-hs256-with-jwks to accept them)"
        );
    }
    Ok(auth)
}

/// Builds the application state from configuration, and returns the change feed too (for the
/// outbox pruner).
pub async fn build_state(
    store: &StoreArgs,
    serve: &ServeArgs,
) -> anyhow::Result<(AppState, Arc<dyn ChangeFeed>)> {
    if serve.reconcile_after <= serve.payments.provider_timeout {
        bail!("--reconcile-after must be longer than --provider-timeout");
    }
    let backend = open_backend(store).await?;
    // Before anything starts: a node with the wrong ticket key must not serve at all.
    let tickets = Arc::new(ticket_signer(&backend, store, serve).await?);
    let (db, feed) = backend.store_and_feed();
    let search = open_search(store, serve, feed.clone()).await?;
    let auth = auth_config(store, serve)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let booking = BookingService {
        store: db,
        payments: payment_provider(store, &serve.payments).await?,
        tickets,
        clock,
        config: BookingConfig {
            hold_ttl: serve.hold_ttl,
            provider_timeout: serve.payments.provider_timeout,
            reconcile_after: serve.reconcile_after,
            alert_after: serve.payment_alert_after,
            resale_fee_basis_points: serve.resale_fee_basis_points,
            queued_commits: serve.queued_commits,
        },
        in_flight: Default::default(),
        captures: Default::default(),
        holds: Default::default(),
    };
    let state = AppState::new(
        Arc::new(Authenticator::new(&auth)),
        ApiConfig {
            body_limit: serve.body_limit,
            request_timeout: serve.request_timeout,
            stripe_webhook_secret: serve.payments.stripe_webhook_secret.clone(),
        },
        booking,
        search,
    );
    state.follow_changes(feed.clone());
    scaled_onsale(&state, serve).await?;
    Ok((state, feed))
}

// --- scaled on-sale path (issue 9) ---
/// Commit-queue workers per node pulling from NATS.
const COMMIT_WORKERS: usize = 2;

/// Puts the shared commit queue (NATS JetStream) and the hold gate (Redis) in place when
/// their URLs are given. Neither has to be up: an unreachable NATS leaves queued purchases to
/// the reconciler, an unreachable Redis sends holds straight to the database.
async fn scaled_onsale(state: &AppState, serve: &ServeArgs) -> anyhow::Result<()> {
    if let Some(url) = &serve.nats_url {
        let mut config =
            boxoffice_queue_nats::NatsConfig::new(url.expose()).with_stream(&serve.nats_stream);
        // Longer than any charge can take, so a live worker's purchase is not redelivered.
        config.ack_wait = serve.payments.provider_timeout + Duration::from_secs(30);
        let log = boxoffice_queue_nats::NatsCommitLog::connect(config)
            .await
            .context("connecting to NATS (--nats-url)")?;
        state
            .commits
            .use_log(&state.booking, Arc::new(log), COMMIT_WORKERS);
        tracing::info!("queued commits go through NATS JetStream");
    }
    if let Some(url) = &serve.redis_url {
        let gate = boxoffice_holds_redis::RedisHoldGate::new(
            boxoffice_holds_redis::RedisGateConfig::new(url.expose()),
        )
        .context("the Redis URL (--redis-url)")?;
        state.holds.install(Arc::new(gate));
        tracing::info!("holds of explicit seats pass the Redis gate");
    }
    Ok(())
}
// --- end scaled on-sale path ---

/// Opens the search index in `<data-dir>/search-index` and starts its indexer, which catches
/// up with the store (or rebuilds the index) and then follows its change feed.
async fn open_search(
    store: &StoreArgs,
    serve: &ServeArgs,
    feed: Arc<dyn ChangeFeed>,
) -> anyhow::Result<SearchIndex> {
    let mut config = SearchConfig::new(store.data_dir.join("search-index"));
    if let Some(threads) = serve.search_threads {
        config.threads = threads;
    }
    config.cache_entries = serve.search_cache_entries;
    config.reader_id = Some(reader_id(store)?);
    let dir = config.dir.clone();
    let index = tokio::task::spawn_blocking(move || SearchIndex::open(&config, feed))
        .await?
        .with_context(|| format!("opening the search index in {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), events = index.len(), "search index open");
    Ok(index)
}

/// How long the background workers get, once told to stop, to finish the pass they are in.
const WORKERS_STOP_WITHIN: Duration = Duration::from_secs(10);
/// How long the search indexer gets to stop.
const INDEXER_STOP_WITHIN: Duration = Duration::from_secs(10);

/// `boxoffice serve`: runs until SIGINT or SIGTERM, then stops in order: it stops accepting
/// and drains in-flight requests, stops the background workers, then the search indexer,
/// all before the runtime goes (the indexer's IO runs on it).
pub async fn serve(store: &StoreArgs, args: &ServeArgs) -> anyhow::Result<()> {
    // TLS files are read before anything starts, so that a bad one stops the node at once.
    let tls = tls_from_args(args)?;
    let (state, feed) = build_state(store, args).await?;
    let search = state.search.clone();
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = {
        let mut stopped = stopped.clone();
        tokio::spawn(boxoffice_api::booking::run_workers(
            state.booking.clone(),
            args.sweep_interval,
            args.reconcile_interval,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ))
    };
    let pruner = {
        let mut stopped = stopped.clone();
        tokio::spawn(boxoffice_api::retention::run_outbox_pruner(
            feed,
            state.booking.clock.clone(),
            Retention {
                reader_ttl: args.feed_reader_ttl,
                min_age: args.outbox_min_age,
            },
            args.outbox_prune_interval,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ))
    };
    // Tests and scripts read this line to learn the port when listening on port 0.
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");
    // The storefront at `/`, beside the JSON API; demo sign-in only on loopback, embedded.
    let web = boxoffice_web::WebConfig::new(
        addr,
        store.database_url.is_none(),
        Some(jwt_secret(store)?),
        args.jwks_url.is_some(),
    );
    // Event streams never finish by themselves: they end when shutdown starts, so that
    // draining the in-flight requests does.
    let closer = state.clone();
    let app = boxoffice_web::router(state, web).layer(axum::middleware::from_fn(count_in_flight));
    let shutdown = async move {
        shutdown_signal().await;
        closer.close_streams();
    };
    let served = match tls {
        // In-flight requests end within the request timeout; a client that never lets its
        // idle connection go (no answer to HTTP/2's shutdown ping) does not hold the node.
        Some(tls) => {
            let drain_within = args.request_timeout + Duration::from_secs(5);
            tls::serve(listener, tls, app, shutdown, drain_within).await
        }
        None => boxoffice_api::serve(listener, app, shutdown).await,
    };
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + WORKERS_STOP_WITHIN;
    for (name, mut task) in [("booking workers", workers), ("outbox pruner", pruner)] {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!(
                worker = name,
                "a background worker did not stop in time; aborted"
            );
            task.abort();
        }
    }
    tokio::task::spawn_blocking(move || search.stop(INDEXER_STOP_WITHIN)).await?;
    served?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// `boxoffice token`. With an identity provider configured (`BOXOFFICE_JWKS_URL`), nodes
/// refuse HS256 tokens unless `--allow-hs256-with-jwks`, so neither is one printed.
pub fn token(store: &StoreArgs, args: &TokenArgs) -> anyhow::Result<String> {
    if args.jwks_url.is_some() && !args.allow_hs256_with_jwks {
        bail!(
            "an identity provider is configured (--jwks-url / BOXOFFICE_JWKS_URL): nodes refuse \
             HS256 tokens unless started with --allow-hs256-with-jwks \
             (BOXOFFICE_ALLOW_HS256_WITH_JWKS=true), so this token would not be accepted; get a \
             token from the identity provider, or pass --allow-hs256-with-jwks here and to the nodes"
        );
    }
    let secret = jwt_secret(store)?;
    let roles: Vec<Role> = args.roles.iter().map(|r| (*r).into()).collect();
    boxoffice_api::auth::mint_hs256(&secret, &args.sub, &roles, args.ttl)
        .context("signing the token")
}

/// `boxoffice verify`.
pub async fn verify(store: &StoreArgs) -> anyhow::Result<()> {
    let db = open_store(store).await?;
    let findings = db.verify(time::OffsetDateTime::now_utc()).await?;
    if findings.is_empty() {
        println!("ok: no invariant is broken");
        return Ok(());
    }
    for f in &findings {
        println!("{}: {}", f.rule, f.detail);
    }
    bail!("{} broken invariant(s)", findings.len())
}

async fn sharded(store: &StoreArgs) -> anyhow::Result<ShardedStore> {
    match open_backend(store).await? {
        Backend::Sharded(s) => Ok(s),
        _ => bail!(
            "not sharded: pass several PostgreSQL URLs to --database-url, separated by commas"
        ),
    }
}

/// `boxoffice shard status`.
pub async fn shard_status(store: &StoreArgs) -> anyhow::Result<()> {
    let db = sharded(store).await?;
    let misplaced = db.misplaced().await?;
    for (i, shard) in db.shards().enumerate() {
        let events = shard.event_ids().await?.len();
        let leaving = misplaced.iter().filter(|m| m.1 == i).count();
        println!(
            "shard {i} ({}): {events} events, {leaving} of them belong on another shard",
            shard.store_id().await?
        );
    }
    if !misplaced.is_empty() {
        println!(
            "run `boxoffice shard rebalance` to move {} events",
            misplaced.len()
        );
    }
    Ok(())
}

/// `boxoffice shard rebalance`.
pub async fn shard_rebalance(store: &StoreArgs) -> anyhow::Result<()> {
    let db = sharded(store).await?;
    let done = db.rebalance().await?;
    println!(
        "moved {} events ({} rows) to the shards that own them",
        done.moved.len(),
        done.rows
    );
    Ok(())
}

/// `boxoffice seed`.
pub async fn seed(store: &StoreArgs, args: &SeedArgs) -> anyhow::Result<()> {
    let db = open_store(store).await?;
    let started = std::time::Instant::now();
    let now = time::OffsetDateTime::now_utc();
    let mut generator = crate::seed::Generator::new(args.seed, now);
    let mut done = 0;
    while done < args.events {
        let n = (args.events - done).min(5_000);
        let batch = generator.events(n);
        db.create_events_bulk(&batch).await?;
        done += n;
    }
    println!(
        "seeded {} events (seed {}; events already there are kept as they are) in {:.1}s",
        args.events,
        args.seed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// --- Kubernetes (issue 12) ---
/// Counts requests being handled in `http_requests_in_flight` (a gauge in `/metrics`): the
/// HorizontalPodAutoscaler's Pods metric beside CPU (deploy/k8s/hpa.yaml). A request counts
/// until its response starts, so a long event stream counts only while it is being opened.
async fn count_in_flight(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    struct InFlight;
    impl Drop for InFlight {
        fn drop(&mut self) {
            metrics::gauge!("http_requests_in_flight").decrement(1.0);
        }
    }
    metrics::gauge!("http_requests_in_flight").increment(1.0);
    let _counted = InFlight;
    next.run(request).await
}
// --- end Kubernetes ---

// --- TLS (issue 12) ---
/// The TLS configuration the flags ask for, read and checked; `None` for plain HTTP.
fn tls_from_args(args: &ServeArgs) -> anyhow::Result<Option<tls::Tls>> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = tls::Tls::load(&tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            })?;
            tracing::info!(
                client_certificates = tls.client_auth,
                "serving HTTPS; operator and scanner routes {}",
                if tls.client_auth {
                    "need a client certificate"
                } else {
                    "need no client certificate (no --tls-client-ca)"
                }
            );
            Ok(Some(tls))
        }
        (None, None) if args.tls_client_ca.is_some() => {
            bail!("--tls-client-ca needs --tls-cert and --tls-key")
        }
        (None, None) => Ok(None),
        _ => bail!("--tls-cert and --tls-key go together"),
    }
}
