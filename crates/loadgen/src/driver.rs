//! The shared plumbing of every scenario: virtual users on keep-alive HTTP/1.1 connections,
//! closed loop (a fixed number of users, each sending its next request when the previous one
//! is answered) or open loop (a target rate, latency measured from when each request *should*
//! have been sent, so a stalled server cannot hide its queue — no coordinated omission),
//! warm-up, HDR histograms per request kind, and a markdown report.
//!
//! A scenario only says what one user does in one iteration ([`Scenario::iteration`]): one
//! request (search, healthz) or a flow of several whose later steps use earlier answers
//! (deep pages; a booking attempt then its commit). Each request is timed under its own label.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpStream;

pub type Rng = ChaCha8Rng;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one virtual user does, again and again.
pub trait Scenario: Send + Sync + 'static {
    fn name(&self) -> String;
    /// One iteration: one or more requests through `http`.
    fn iteration<'a>(&'a self, http: &'a mut Http, rng: &'a mut Rng) -> BoxFuture<'a, ()>;
}

/// How hard to push.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// This many users, each waiting for its answer before the next request.
    Closed { users: usize },
    /// This many requests per second in total, spread over `users` connections.
    Open { users: usize, rate: f64 },
}

impl Load {
    fn users(self) -> usize {
        match self {
            Load::Closed { users } | Load::Open { users, .. } => users,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    pub addr: SocketAddr,
    pub load: Load,
    pub warmup: Duration,
    pub duration: Duration,
    pub seed: u64,
}

/// One user's connection and recorder.
pub struct Http {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
    recorder: Recorder,
    /// Open loop: when the current request was due.
    due: Option<Instant>,
    /// When the previous request was answered.
    last_done: Instant,
    measure_from: Instant,
    stop_at: Instant,
}

/// The answer to one request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Http {
    /// A connection for setting a scenario up (creating events, say): it records nothing.
    pub fn for_setup(addr: SocketAddr) -> anyhow::Result<Self> {
        let now = Instant::now();
        Ok(Self {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            sender: None,
            recorder: Recorder::default(),
            due: None,
            last_done: now,
            measure_from: now + Duration::from_secs(365 * 24 * 3600),
            stop_at: now,
        })
    }

    /// Sends one request and records its latency under `label`. Connection failures are
    /// recorded as errors and the connection is re-established on the next request.
    pub async fn request(
        &mut self,
        label: &'static str,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Option<Answer> {
        // Open loop: a request held back by the previous answer is timed from when it was due
        // (the server's backlog counts); one merely woken a little late by the timer is timed
        // from when it was sent (the driver's own slack does not).
        let started = match self.due.take() {
            Some(due) if self.last_done > due => due,
            _ => Instant::now(),
        };
        let result = self.send(method, path_and_query, headers, body).await;
        let done = Instant::now();
        self.last_done = done;
        let ok = matches!(&result, Ok(a) if a.status.is_success());
        if started >= self.measure_from && done <= self.stop_at {
            self.recorder
                .record(label, done.saturating_duration_since(started), ok);
        }
        match result {
            Ok(answer) => Some(answer),
            Err(_) => {
                self.sender = None;
                None
            }
        }
    }

    pub async fn get(&mut self, label: &'static str, path_and_query: &str) -> Option<Answer> {
        self.request(label, Method::GET, path_and_query, &[], None)
            .await
    }

    async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> anyhow::Result<Answer> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().context("no connection")?;
        sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, self.host.clone());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let res = sender.send_request(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }
}

/// Latency histograms (microseconds) and error counts per label.
#[derive(Debug, Default)]
pub struct Recorder {
    by_label: BTreeMap<&'static str, (Histogram<u64>, u64)>,
}

impl Recorder {
    fn record(&mut self, label: &'static str, latency: Duration, ok: bool) {
        let (h, errors) = self.by_label.entry(label).or_insert_with(|| {
            (
                Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
                0,
            )
        });
        let _ = h.record((latency.as_micros() as u64).max(1));
        if !ok {
            *errors += 1;
        }
    }

    fn merge(&mut self, other: Recorder) {
        for (label, (h, e)) in other.by_label {
            match self.by_label.get_mut(label) {
                Some((mine, errors)) => {
                    let _ = mine.add(&h);
                    *errors += e;
                }
                None => {
                    self.by_label.insert(label, (h, e));
                }
            }
        }
    }

    fn total(&self) -> (Histogram<u64>, u64) {
        let mut all = Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
        let mut errors = 0;
        for (h, e) in self.by_label.values() {
            let _ = all.add(h);
            errors += e;
        }
        (all, errors)
    }
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Report {
    pub scenario: String,
    pub load: Load,
    pub seconds: f64,
    pub recorder: Recorder,
}

/// Runs `scenario` under `config` and returns what was measured after the warm-up.
pub async fn run(scenario: Arc<dyn Scenario>, config: RunConfig) -> anyhow::Result<Report> {
    let users = config.load.users().max(1);
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let stop_at = measure_from + config.duration;
    let host = HeaderValue::from_str(&config.addr.to_string())?;
    let mut tasks = Vec::with_capacity(users);
    for u in 0..users {
        let scenario = scenario.clone();
        let mut http = Http {
            addr: config.addr,
            host: host.clone(),
            sender: None,
            recorder: Recorder::default(),
            due: None,
            last_done: start,
            measure_from,
            stop_at,
        };
        let interval = match config.load {
            Load::Open { rate, .. } => {
                Some(Duration::from_secs_f64(users as f64 / rate.max(0.001)))
            }
            Load::Closed { .. } => None,
        };
        let mut rng =
            Rng::seed_from_u64(config.seed.wrapping_mul(1_000_003).wrapping_add(u as u64));
        tasks.push(tokio::spawn(async move {
            // Open loop: users start staggered over one interval.
            let mut next = interval.map(|i| start + i.mul_f64(u as f64 / users as f64));
            while Instant::now() < stop_at {
                if let (Some(due), Some(i)) = (next, interval) {
                    tokio::time::sleep_until(due.into()).await;
                    http.due = Some(due);
                    next = Some(due + i);
                }
                scenario.iteration(&mut http, &mut rng).await;
            }
            http.recorder
        }));
    }
    let mut recorder = Recorder::default();
    for t in tasks {
        recorder.merge(t.await?);
    }
    Ok(Report {
        scenario: scenario.name(),
        load: config.load,
        seconds: config.duration.as_secs_f64(),
        recorder,
    })
}

pub fn table_header() -> String {
    "| scenario | load | requests | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |\n|---|---|---:|---:|---:|---:|---:|---:|---:|".to_owned()
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn row(name: &str, load: &str, seconds: f64, h: &Histogram<u64>, errors: u64) -> String {
    format!(
        "| {name} | {load} | {} | {:.0} | {} | {} | {} | {} | {errors} |",
        h.len(),
        h.len() as f64 / seconds,
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    )
}

impl Report {
    pub fn load_label(&self) -> String {
        match self.load {
            Load::Closed { users } => format!("{users} users"),
            Load::Open { users, rate } => format!("{rate:.0}/s over {users} conns"),
        }
    }

    /// The overall row, and with `breakdown` one row per request kind.
    pub fn rows(&self, breakdown: bool) -> Vec<String> {
        let (all, errors) = self.recorder.total();
        let mut out = vec![row(
            &self.scenario,
            &self.load_label(),
            self.seconds,
            &all,
            errors,
        )];
        if breakdown && self.recorder.by_label.len() > 1 {
            for (label, (h, e)) in &self.recorder.by_label {
                out.push(row(
                    &format!("{} · {label}", self.scenario),
                    &self.load_label(),
                    self.seconds,
                    h,
                    *e,
                ));
            }
        }
        out
    }

    pub fn requests_per_second(&self) -> f64 {
        self.recorder.total().0.len() as f64 / self.seconds
    }

    pub fn p99_ms(&self) -> f64 {
        self.recorder.total().0.value_at_quantile(0.99) as f64 / 1000.0
    }

    /// Successful requests of one kind per second.
    pub fn ok_per_second(&self, label: &str) -> f64 {
        self.recorder
            .by_label
            .get(label)
            .map(|(h, errors)| h.len().saturating_sub(*errors) as f64 / self.seconds)
            .unwrap_or(0.0)
    }

    /// A latency quantile of one kind of request, in milliseconds.
    pub fn quantile_ms(&self, label: &str, q: f64) -> f64 {
        self.recorder
            .by_label
            .get(label)
            .map(|(h, _)| h.value_at_quantile(q) as f64 / 1000.0)
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers every request after exactly `delay`, and counts them.
    async fn slow_server(delay: Duration) -> (SocketAddr, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let count = served.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        tokio::time::sleep(delay).await;
                        count.fetch_add(1, Ordering::SeqCst);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, served)
    }

    struct Get;

    impl Scenario for Get {
        fn name(&self) -> String {
            "get".into()
        }
        fn iteration<'a>(&'a self, http: &'a mut Http, _: &'a mut Rng) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                http.get("get", "/").await;
            })
        }
    }

    /// The driver counts what the server served (less what was in flight at the edges of the
    /// window) and never reports a latency below what the server took.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn measures_what_the_server_did() {
        let delay = Duration::from_millis(5);
        let (addr, served) = slow_server(delay).await;
        let report = run(
            Arc::new(Get),
            RunConfig {
                addr,
                load: Load::Closed { users: 4 },
                warmup: Duration::ZERO,
                duration: Duration::from_millis(500),
                seed: 1,
            },
        )
        .await
        .unwrap();
        let (h, errors) = report.recorder.total();
        let served = served.load(Ordering::SeqCst);
        assert_eq!(errors, 0);
        assert!(
            h.len() <= served && h.len() + 8 >= served,
            "{} vs {served}",
            h.len()
        );
        assert!(h.min() >= delay.as_micros() as u64, "min {} µs", h.min());
        // Four users, each at most one request per 5 ms.
        assert!(h.len() <= 4 * 100 + 4, "{}", h.len());
    }
}
