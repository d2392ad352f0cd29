//! Command line and configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use boxoffice_api::auth::{Role, Secret};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app;

#[derive(Debug, Parser)]
#[command(
    name = "boxoffice",
    version,
    about = "Event ticketing: search, hold, pay once, ticket, resell"
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives. The same flags select the store for every subcommand.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the embedded database, the generated secrets and the search index.
    #[arg(
        long,
        env = "BOXOFFICE_DATA_DIR",
        default_value = "./boxoffice-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// `postgres://…` to run on PostgreSQL instead of the embedded SQLite store; several,
    /// separated by commas, to shard events over them.
    #[arg(
        long,
        env = "BOXOFFICE_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<Secret>,
    /// PostgreSQL connections per node.
    #[arg(
        long,
        env = "BOXOFFICE_DB_POOL_SIZE",
        default_value_t = 16,
        global = true
    )]
    pub db_pool_size: usize,
    /// Group commit: concurrent purchases are started and confirmed a group per transaction
    /// (a few set-based statements for the whole group). `false`: each in its own.
    #[arg(
        long,
        env = "BOXOFFICE_DB_GROUP_COMMIT",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub db_group_commit: bool,
    /// With group commit: how long a group of fewer than 16 requests waits for more before it
    /// is written, and only while other purchases are under way (`0ms`: never). Under full
    /// load groups fill while the previous one is written; at a moderate rate the wait turns
    /// many groups of one or two into fewer, larger ones, which costs the database less than
    /// half per booking, for up to the window more per step (`bench/RESULTS.md`). Its default
    /// is the store's own (`DEFAULT_GROUP_WINDOW`).
    #[arg(long, env = "BOXOFFICE_DB_GROUP_WINDOW", default_value = "20ms", value_parser = parse_duration, global = true)]
    pub db_group_window: Duration,
    /// What `--database-url` reaches: `none` (PostgreSQL itself, or a pooler in session
    /// mode) or `transaction` (a pooler that lends a connection per transaction, such as
    /// pgbouncer's `pool_mode = transaction`: statements are sent unnamed, nothing is kept in
    /// the session, and the node checks the schema instead of migrating it — run `migrate`
    /// against the primary directly).
    #[arg(long, env = "BOXOFFICE_DATABASE_POOLER", value_enum, default_value_t = DatabasePooler::None, global = true)]
    pub database_pooler: DatabasePooler,
    /// A direct `postgres://` URL (not through a transaction pooler) on which the node listens
    /// for change notifications. Default: `--database-url`; behind a transaction pooler
    /// without it, the change feed is polled (about once a second).
    #[arg(
        long,
        env = "BOXOFFICE_DATABASE_LISTEN_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_listen_url: Option<Secret>,
    /// A streaming replica (`postgres://…`) that serves catalog reads — event detail, seat
    /// maps, the search index's rebuild scan — while it keeps up; holds, commits, bookings and
    /// tickets always use the primary. A replica that is down or too far behind is skipped.
    #[arg(
        long,
        env = "BOXOFFICE_DATABASE_REPLICA_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_replica_url: Option<Secret>,
    /// How far behind the primary the replica may be and still serve reads.
    #[arg(long, env = "BOXOFFICE_DATABASE_REPLICA_MAX_LAG", default_value = "2s", value_parser = parse_duration, global = true)]
    pub database_replica_max_lag: Duration,
    /// HS256 secret for tokens. Generated into the data directory on first start when unset.
    #[arg(
        long,
        env = "BOXOFFICE_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<Secret>,
    /// Log format.
    #[arg(long, env = "BOXOFFICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatabasePooler {
    None,
    Transaction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate,
    /// Print a signed token for trying the API.
    Token(TokenArgs),
    /// Fill the store with a realistic demo catalog.
    Seed(SeedArgs),
    /// Check the booking invariants (no seat sold twice, money and tickets agree, …) over the
    /// whole database; exits non-zero if anything is wrong.
    Verify,
    /// Events sharded over several databases (`--database-url a,b,…`).
    #[command(subcommand)]
    Shard(ShardCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum ShardCommand {
    /// How many events each shard holds, and how many belong on another (after a shard was
    /// added).
    Status,
    /// Move every event that belongs on another shard there, with its seats, bookings,
    /// tickets, payments, listings, transfers and waiting room. Run it after adding a shard,
    /// before the moving events go on sale (or with the nodes stopped); safe to run again.
    Rebalance,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BOXOFFICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// JWKS URL of an identity provider whose RS256/ES256/EdDSA tokens are accepted.
    #[arg(long, env = "BOXOFFICE_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Required `iss` of tokens, when set.
    #[arg(long, env = "BOXOFFICE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of tokens, when set.
    #[arg(long, env = "BOXOFFICE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Accept HS256 tokens (signed with the shared secret) even though --jwks-url is set. Off by
    /// default: with an identity provider, the secret must not be a second way to mint roles.
    #[arg(long, env = "BOXOFFICE_ALLOW_HS256_WITH_JWKS")]
    pub allow_hs256_with_jwks: bool,
    /// How long a seat hold lasts, e.g. `5m`, `90s`.
    #[arg(long, env = "BOXOFFICE_HOLD_TTL", default_value = "5m", value_parser = parse_duration)]
    pub hold_ttl: Duration,
    /// Requests taking longer are answered 503.
    #[arg(long, env = "BOXOFFICE_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "BOXOFFICE_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Ed25519 key (PKCS#8 PEM) that signs tickets. Embedded mode generates one into the data
    /// directory when unset; on PostgreSQL it is required, the same file on every node (the
    /// first node registers its public key; a node with another key refuses to start).
    #[arg(long, env = "BOXOFFICE_TICKET_KEY_FILE")]
    pub ticket_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub payments: PaymentArgs,
    // --- TLS (issue 12) ---
    /// Serve HTTPS: the certificate chain (PEM, leaf first). Needs --tls-key.
    #[arg(long, env = "BOXOFFICE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "BOXOFFICE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) whose client certificates the operator and scanner routes
    /// (`/v1/checkin`, `/v1/events/{id}/revocations`, `/metrics`) require; other routes
    /// still work without one. Needs --tls-cert.
    #[arg(long, env = "BOXOFFICE_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    // --- end TLS ---
    /// How often lapsed holds are swept back on sale.
    #[arg(long, env = "BOXOFFICE_SWEEP_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub sweep_interval: Duration,
    /// How often unsettled payments are reconciled with the provider.
    #[arg(long, env = "BOXOFFICE_RECONCILE_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub reconcile_interval: Duration,
    /// How long a payment may stay unsettled before the reconciler asks the provider about
    /// it. Must exceed --provider-timeout.
    #[arg(long, env = "BOXOFFICE_RECONCILE_AFTER", default_value = "30s", value_parser = parse_duration)]
    pub reconcile_after: Duration,
    /// A payment still unsettled after this long is reported as an alert in the logs (and its
    /// age is in /metrics as payments_unsettled_oldest_age_seconds).
    #[arg(long, env = "BOXOFFICE_PAYMENT_ALERT_AFTER", default_value = "15m", value_parser = parse_duration)]
    pub payment_alert_after: Duration,
    /// The platform's fee on each resale, in basis points of the price (1000 = 10%); the
    /// seller is paid the rest after the event.
    #[arg(long, env = "BOXOFFICE_RESALE_FEE_BASIS_POINTS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub resale_fee_basis_points: u32,
    /// Take every commit through the commit queue (202 and a status stream at
    /// /v1/booking/{id}/events), as waiting-room events always do: for on-sale rushes.
    #[arg(long, env = "BOXOFFICE_QUEUED_COMMITS")]
    pub queued_commits: bool,
    // --- scaled on-sale path (issue 9) ---
    /// NATS server (`nats://host:4222`) whose JetStream carries queued commits between nodes;
    /// unset: the queue is in-process.
    #[arg(long, env = "BOXOFFICE_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<Secret>,
    /// JetStream stream of queued commits; every node of one deployment uses the same.
    #[arg(
        long,
        env = "BOXOFFICE_NATS_STREAM",
        default_value = "BOXOFFICE_COMMITS"
    )]
    pub nats_stream: String,
    /// Redis server (`redis://host:6379`) that gates holds of explicit seats before the
    /// database; unset: holds go straight to the database.
    #[arg(long, env = "BOXOFFICE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    // --- end scaled on-sale path ---
    /// Threads that run searches (default: one per core).
    #[arg(long, env = "BOXOFFICE_SEARCH_THREADS")]
    pub search_threads: Option<usize>,
    /// Rendered search answers kept for repeated searches; 0 turns the cache off.
    #[arg(long, env = "BOXOFFICE_SEARCH_CACHE_ENTRIES", default_value_t = 20_000)]
    pub search_cache_entries: usize,
    /// How often the outbox (change feed) is pruned behind its readers.
    #[arg(long, env = "BOXOFFICE_OUTBOX_PRUNE_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub outbox_prune_interval: Duration,
    /// Outbox rows younger than this are never pruned, so a starting node can catch up.
    #[arg(long, env = "BOXOFFICE_OUTBOX_MIN_AGE", default_value = "10m", value_parser = parse_duration)]
    pub outbox_min_age: Duration,
    /// A node whose search indexer has not reported for this long stops holding outbox rows
    /// back; if it returns behind the pruned rows, it rebuilds its index.
    #[arg(long, env = "BOXOFFICE_FEED_READER_TTL", default_value = "1h", value_parser = parse_duration)]
    pub feed_reader_ttl: Duration,
}

/// The payment provider.
#[derive(Debug, Clone, Args)]
pub struct PaymentArgs {
    /// `sandbox` (built in, Stripe-like test cards) or `stripe`.
    #[arg(long, env = "BOXOFFICE_PAYMENTS", value_enum, default_value_t = PaymentsArg::Sandbox)]
    pub payments: PaymentsArg,
    /// How long to wait for the provider before the outcome counts as unknown.
    #[arg(long, env = "BOXOFFICE_PROVIDER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub provider_timeout: Duration,
    /// How long the sandbox's `pm_card_timeout` hangs.
    #[arg(long, env = "BOXOFFICE_SANDBOX_HANG", default_value = "60s", value_parser = parse_duration)]
    pub sandbox_hang: Duration,
    /// Stripe secret key (`sk_…`).
    #[arg(long, env = "BOXOFFICE_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<Secret>,
    /// Stripe API base URL.
    #[arg(
        long,
        env = "BOXOFFICE_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: String,
    /// How long Stripe's Search API may lag behind a new payment (what the reconciler waits
    /// before taking "not found" by idempotency key as final).
    #[arg(long, env = "BOXOFFICE_STRIPE_SEARCH_LAG", default_value = "60s", value_parser = parse_duration)]
    pub stripe_search_lag: Duration,
    /// Sellers' Stripe Connect accounts for resale payouts, as `customer=acct_…` pairs
    /// separated by commas; a seller without one keeps their payout SCHEDULED.
    #[arg(long, env = "BOXOFFICE_STRIPE_CONNECTED_ACCOUNTS", value_parser = parse_accounts, default_value = "")]
    pub stripe_connected_accounts: std::collections::HashMap<String, String>,
    /// Stripe webhook signing secret (`whsec_…`), enabling POST /v1/webhooks/stripe.
    #[arg(long, env = "BOXOFFICE_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaymentsArg {
    Sandbox,
    Stripe,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The subject: the customer id.
    #[arg(long)]
    pub sub: String,
    /// A role; repeat for several (`--role customer --role organizer`).
    #[arg(long = "role", value_enum, default_values_t = vec![RoleArg::Customer])]
    pub roles: Vec<RoleArg>,
    /// Lifetime, e.g. `1h`, `30m`, `7d`.
    #[arg(long, default_value = "12h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// The nodes' identity provider, if any: with one, nodes refuse HS256 tokens and so this
    /// command refuses to print one, unless --allow-hs256-with-jwks.
    #[arg(long, env = "BOXOFFICE_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Print an HS256 token even though an identity provider is configured (the nodes must be
    /// started with the same flag to accept it).
    #[arg(long, env = "BOXOFFICE_ALLOW_HS256_WITH_JWKS")]
    pub allow_hs256_with_jwks: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Customer,
    Organizer,
    Scanner,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Customer => Role::Customer,
            RoleArg::Organizer => Role::Organizer,
            RoleArg::Scanner => Role::Scanner,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// How many events to create.
    #[arg(long, default_value_t = 1000)]
    pub events: usize,
    /// The same seed gives the same catalog.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `90s`, `5m`, `12h`, `7d`, or plain seconds.
/// `alice=acct_1,bob=acct_2` → {alice: acct_1, bob: acct_2}.
pub fn parse_accounts(s: &str) -> Result<std::collections::HashMap<String, String>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (who, account) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not customer=acct_…"))?;
            if !account.starts_with("acct_") {
                return Err(format!("`{account}` is not a Stripe account id (acct_…)"));
            }
            Ok((who.trim().to_owned(), account.trim().to_owned()))
        })
        .collect()
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 5m, 12h or 7d"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}`: the unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

pub fn run(cli: Cli) -> ExitCode {
    init_tracing(cli.store.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => app::serve(&cli.store, &args).await,
            // Migrating takes a session-level advisory lock: not through a transaction pooler.
            Command::Migrate if cli.store.database_pooler == DatabasePooler::Transaction => {
                Err(anyhow::anyhow!(
                    "`migrate` needs a direct connection to the primary: run it with \
                     --database-pooler none and the primary's URL"
                ))
            }
            Command::Migrate => app::open_store(&cli.store).await.map(|_| {
                println!("migrations applied");
            }),
            Command::Token(args) => app::token(&cli.store, &args).map(|t| println!("{t}")),
            Command::Seed(args) => app::seed(&cli.store, &args).await,
            Command::Verify => app::verify(&cli.store).await,
            Command::Shard(ShardCommand::Status) => app::shard_status(&cli.store).await,
            Command::Shard(ShardCommand::Rebalance) => app::shard_rebalance(&cli.store).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BOXOFFICE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("12").unwrap(), Duration::from_secs(12));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn the_group_window_defaults_to_the_stores_own() {
        let cli = Cli::try_parse_from(["boxoffice", "migrate"]).unwrap();
        assert_eq!(
            cli.store.db_group_window,
            boxoffice_store_postgres::DEFAULT_GROUP_WINDOW
        );
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let cli = Cli::try_parse_from([
            "boxoffice",
            "--jwt-secret",
            "hunter2",
            "--database-url",
            "postgres://u:pw@h/db",
            "migrate",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("pw@"), "{shown}");
    }
}
