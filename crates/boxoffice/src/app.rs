//! Wiring: configuration in, a running service out.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use boxoffice_api::auth::{AuthConfig, Authenticator, Role, Secret};
use boxoffice_api::booking::{BookingConfig, BookingService};
use boxoffice_api::tickets::TicketSigner;
use boxoffice_api::{ApiConfig, AppState};
use boxoffice_domain::feed::ChangeFeed;
use boxoffice_domain::payments::PaymentProvider;
use boxoffice_domain::ports::{Clock, Store, SystemClock};
use boxoffice_payments::{Sandbox, SandboxOptions, Stripe, StripeConfig};
use boxoffice_search::{SearchConfig, SearchIndex};
use boxoffice_store_postgres::{PgOptions, PgStore};
use boxoffice_store_sqlite::SqliteStore;
use rand::RngExt;
use tokio::net::TcpListener;

use crate::cli::{PaymentArgs, PaymentsArg, SeedArgs, ServeArgs, StoreArgs, TokenArgs};

/// The store the flags select: PostgreSQL for a `postgres://` URL, otherwise SQLite in the data
/// directory. Either way, migrations are applied before this returns.
pub async fn open_store(args: &StoreArgs) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_store_and_feed(args).await?.0)
}

/// The selected store, and the same store as the change feed the search indexer follows.
pub async fn open_store_and_feed(
    args: &StoreArgs,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn ChangeFeed>)> {
    match &args.database_url {
        Some(url) => {
            let url = url.expose();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bail!("--database-url must be a postgres:// URL");
            }
            let store = PgStore::connect(
                url,
                PgOptions {
                    pool_size: args.db_pool_size,
                    ..PgOptions::default()
                },
            )
            .await
            .context("opening the PostgreSQL store")?;
            tracing::info!("using PostgreSQL");
            Ok((Arc::new(store.clone()), Arc::new(store)))
        }
        None => {
            let path = args.data_dir.join("boxoffice.db");
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await?
                .context("opening the embedded store")?;
            tracing::info!(path = %store.path().display(), "using the embedded SQLite store");
            Ok((Arc::new(store.clone()), Arc::new(store)))
        }
    }
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

/// The ticket signing key: from the configured file, else the one kept in the data
/// directory, generated on first use.
pub fn ticket_signer(store: &StoreArgs, serve: &ServeArgs) -> anyhow::Result<TicketSigner> {
    let path = match &serve.ticket_key_file {
        Some(p) => p.clone(),
        None => store.data_dir.join("ticket-signing-key.pem"),
    };
    if let Ok(pem) = std::fs::read_to_string(&path) {
        return TicketSigner::from_pem(&pem).with_context(|| format!("reading {}", path.display()));
    }
    if serve.ticket_key_file.is_some() {
        bail!("cannot read the ticket key file {}", path.display());
    }
    std::fs::create_dir_all(&store.data_dir)
        .with_context(|| format!("creating {}", store.data_dir.display()))?;
    let (_, pem) = TicketSigner::generate();
    write_private(&path, &pem)?;
    // Read back what is on disk: a concurrent starter may have written its key first.
    let pem = std::fs::read_to_string(&path)?;
    TicketSigner::from_pem(&pem).with_context(|| format!("reading {}", path.display()))
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
                Some(url) => Sandbox::postgres_with(url.expose(), options).await,
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
            let config = StripeConfig::new(key.expose())
                .with_base_url(&args.stripe_api_base)
                .with_request_timeout(args.provider_timeout)
                .with_search_lag(args.stripe_search_lag);
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

/// Builds the application state from configuration.
pub async fn build_state(store: &StoreArgs, serve: &ServeArgs) -> anyhow::Result<AppState> {
    if serve.reconcile_after <= serve.payments.provider_timeout {
        bail!("--reconcile-after must be longer than --provider-timeout");
    }
    let (db, feed) = open_store_and_feed(store).await?;
    let search = open_search(store, serve, feed).await?;
    let auth = AuthConfig {
        hs256_secret: Some(jwt_secret(store)?),
        jwks_url: serve.jwks_url.clone(),
        issuer: serve.jwt_issuer.clone(),
        audience: serve.jwt_audience.clone(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let booking = BookingService {
        store: db,
        payments: payment_provider(store, &serve.payments).await?,
        tickets: Arc::new(ticket_signer(store, serve)?),
        clock,
        config: BookingConfig {
            hold_ttl: serve.hold_ttl,
            provider_timeout: serve.payments.provider_timeout,
            reconcile_after: serve.reconcile_after,
            alert_after: serve.payment_alert_after,
        },
        in_flight: Default::default(),
    };
    Ok(AppState::new(
        Arc::new(Authenticator::new(&auth)),
        ApiConfig {
            body_limit: serve.body_limit,
            request_timeout: serve.request_timeout,
            stripe_webhook_secret: serve.payments.stripe_webhook_secret.clone(),
        },
        booking,
        search,
    ))
}

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
    let dir = config.dir.clone();
    let index = tokio::task::spawn_blocking(move || SearchIndex::open(&config, feed))
        .await?
        .with_context(|| format!("opening the search index in {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), events = index.len(), "search index open");
    Ok(index)
}

/// `boxoffice serve`: runs until SIGINT or SIGTERM, then drains in-flight requests.
pub async fn serve(store: &StoreArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let state = build_state(store, args).await?;
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
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("listening on http://{addr}");
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    boxoffice_api::serve(listener, boxoffice_api::router(state), shutdown).await?;
    let _ = workers.await;
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

/// `boxoffice token`.
pub fn token(store: &StoreArgs, args: &TokenArgs) -> anyhow::Result<String> {
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
