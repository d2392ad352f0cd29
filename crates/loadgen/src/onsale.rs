//! The on-sale scenario (issue 9): one event, `--buyers` fans who all join its waiting room
//! before it opens, follow their place as server-sent events until they are let in (or told it
//! sold out), hold `--quantity` places with their admission token, pay through the commit queue
//! (202) and follow the booking's stream until it is CONFIRMED. Optionally a search load runs
//! at the same time, open loop.
//!
//! Reports: buyers let in per second, confirmed bookings per second, time from the opening to
//! the last confirmation (sold out), the commit's time from 202 to CONFIRMED (p50/p99), how
//! many were told "sold out", and every 5xx or unexpected answer (there must be none).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::booking::sign;
use crate::driver::Http;

#[derive(Debug, Clone)]
pub struct OnsaleOptions {
    pub buyers: usize,
    pub places: u32,
    pub quantity: u32,
    pub admit_per_minute: u32,
    /// The room's `admissionMinutes`.
    pub admission_minutes: u32,
    /// The sale opens this long after the event is created (everyone joins before).
    pub opens_in: Duration,
    pub jwt_secret: String,
}

#[derive(Debug, Default)]
struct Outcome {
    admitted_at: Vec<Duration>,
    confirmed_at: Vec<Duration>,
    commit: Option<Histogram<u64>>,
    sold_out_told: usize,
    too_late: usize,
    errors: Vec<String>,
}

/// Runs the on-sale and prints its report. `during` runs alongside, started at the opening.
pub async fn run<F>(addr: SocketAddr, o: OnsaleOptions, during: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<Vec<String>>> + Send + 'static,
{
    let org = sign(&o.jwt_secret, "onsale-organizer".into(), &["organizer"])?;
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let now = time::OffsetDateTime::now_utc();
    let opens = now + o.opens_in;
    let body = json!({
        "name": "Super Star | On-sale benchmark", "performers": ["Super Star"],
        "category": "concert", "startsAt": fmt(now + time::Duration::days(90)),
        "onSaleAt": fmt(opens), "currency": "USD",
        "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                  "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
        "sections": [{"name": "Floor", "capacity": o.places, "priceCents": 9900}],
        "policies": {"maxTicketsPerCustomer": o.quantity, "waitingRoom": {
            "opensAt": fmt(now - time::Duration::minutes(1)),
            "admitPerMinute": o.admit_per_minute, "admissionMinutes": o.admission_minutes}}
    });
    let mut setup = Http::for_setup(addr)?;
    let auth = format!("Bearer {org}");
    let created = setup
        .request(
            "setup",
            Method::POST,
            "/v1/events",
            &[("authorization", &auth)],
            Some(Bytes::from(body.to_string())),
        )
        .await
        .context("creating the event")?;
    if !created.status.is_success() {
        bail!("creating the event: {} {:?}", created.status, created.body);
    }
    let event: Value = serde_json::from_slice(&created.body)?;
    let event = event["eventId"].as_str().context("event id")?.to_owned();
    let opens_at = Instant::now() + o.opens_in;
    eprintln!(
        "{} buyers join the waiting room of one event with {} places; the sale opens in {:?}",
        o.buyers, o.places, o.opens_in
    );
    let outcome = Arc::new(Mutex::new(Outcome {
        commit: Some(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        ..Outcome::default()
    }));
    let mut tasks = Vec::with_capacity(o.buyers);
    for i in 0..o.buyers {
        let token = sign(&o.jwt_secret, format!("onsale-fan-{i}"), &["customer"])?;
        let (event, outcome, o) = (event.clone(), outcome.clone(), o.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = buyer(addr, &event, &token, &o, opens_at, &outcome).await {
                outcome.lock().await.errors.push(format!("fan {i}: {e:#}"));
            }
        }));
        if i % 500 == 499 {
            tokio::task::yield_now().await;
        }
    }
    let wait = opens_at.saturating_duration_since(Instant::now());
    tokio::time::sleep(wait).await;
    let side = tokio::spawn(during);
    for t in tasks {
        let _ = t.await;
    }
    let side = side.await.context("side load")??;
    let o_ = outcome.lock().await;
    report(&o, &o_, &side);
    Ok(())
}

fn report(o: &OnsaleOptions, r: &Outcome, side: &[String]) {
    let secs = |v: &[Duration]| v.iter().max().map_or(0.0, |d| d.as_secs_f64());
    let rate = |v: &[Duration]| {
        let s = secs(v);
        if s > 0.0 { v.len() as f64 / s } else { 0.0 }
    };
    let commit = r.commit.as_ref();
    let q = |p: f64| commit.map_or(0.0, |h| h.value_at_quantile(p) as f64 / 1000.0);
    println!(
        "| buyers | places | let in | let in/s | confirmed bookings | confirmed/s | sold out after s | commit 202→CONFIRMED p50 / p99 ms | told sold out | let in too late | errors |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {:.0} | {} | {:.0} | {:.2} | {:.0} / {:.0} | {} | {} | {} |",
        o.buyers,
        o.places,
        r.admitted_at.len(),
        rate(&r.admitted_at),
        r.confirmed_at.len(),
        rate(&r.confirmed_at),
        secs(&r.confirmed_at),
        q(0.5),
        q(0.99),
        r.sold_out_told,
        r.too_late,
        r.errors.len()
    );
    for e in r.errors.iter().take(5) {
        println!("\nerror: {e}");
    }
    if !side.is_empty() {
        println!();
        for line in side {
            println!("{line}");
        }
    }
}

async fn buyer(
    addr: SocketAddr,
    event: &str,
    token: &str,
    o: &OnsaleOptions,
    opens_at: Instant,
    outcome: &Mutex<Outcome>,
) -> anyhow::Result<()> {
    let mut http = Http::for_setup(addr)?;
    let auth = format!("Bearer {token}");
    let joined = http
        .request(
            "join",
            Method::POST,
            &format!("/v1/events/{event}/queue"),
            &[("authorization", &auth)],
            Some(Bytes::from_static(b"{}")),
        )
        .await
        .context("join")?;
    if !joined.status.is_success() {
        bail!(
            "join: {} {}",
            joined.status,
            String::from_utf8_lossy(&joined.body)
        );
    }
    let place: Value = serde_json::from_slice(&joined.body)?;
    let queue = place["queueId"].as_str().context("queue id")?;
    let (name, data) = follow(
        addr,
        &format!("/v1/queue/{queue}/events"),
        token,
        &["admitted", "soldout", "expired"],
    )
    .await?;
    if name != "admitted" {
        outcome.lock().await.sold_out_told += 1;
        return Ok(());
    }
    let admission = data["admissionToken"].as_str().context("token")?.to_owned();
    outcome
        .lock()
        .await
        .admitted_at
        .push(Instant::now().saturating_duration_since(opens_at));
    let hold = json!({"eventId": event, "section": "Floor", "quantity": o.quantity}).to_string();
    let booking = loop {
        let a = http
            .request(
                "attempt",
                Method::POST,
                "/v1/attempt",
                &[("authorization", &auth), ("admission-token", &admission)],
                Some(Bytes::from(hold.clone())),
            )
            .await
            .context("attempt")?;
        let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        match (a.status.as_u16(), v["code"].as_str()) {
            (201, _) => break v["bookingId"].as_str().context("booking id")?.to_owned(),
            (409, Some("not-enough-seats")) => {
                outcome.lock().await.too_late += 1;
                return Ok(());
            }
            (409, Some("seats-contended")) => continue,
            (s, _) => bail!("attempt: {s} {v}"),
        }
    };
    let key = format!("onsale-{booking}");
    let pay = json!({"bookingId": booking, "paymentMethod": "pm_card_visa"}).to_string();
    let t0 = Instant::now();
    let c = http
        .request(
            "commit",
            Method::POST,
            "/v1/commit",
            &[("authorization", &auth), ("idempotency-key", &key)],
            Some(Bytes::from(pay)),
        )
        .await
        .context("commit")?;
    let confirmed = match c.status.as_u16() {
        200 => true,
        202 => {
            let (name, _) = follow(
                addr,
                &format!("/v1/booking/{booking}/events"),
                token,
                &["confirmed", "problem"],
            )
            .await?;
            name == "confirmed"
        }
        s => bail!("commit: {s} {}", String::from_utf8_lossy(&c.body)),
    };
    if !confirmed {
        bail!("booking {booking} was not confirmed");
    }
    let mut out = outcome.lock().await;
    if let Some(h) = out.commit.as_mut() {
        let _ = h.record(t0.elapsed().as_micros().max(1) as u64);
    }
    out.confirmed_at
        .push(Instant::now().saturating_duration_since(opens_at));
    Ok(())
}

/// Follows a server-sent event stream until one of `until`; returns its name and data.
async fn follow(
    addr: SocketAddr,
    path: &str,
    token: &str,
    until: &[&str],
) -> anyhow::Result<(String, Value)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(HOST, addr.to_string())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::new()))?;
    let res = sender.send_request(req).await?;
    if !res.status().is_success() {
        bail!("{path}: {}", res.status());
    }
    let mut body = res.into_body();
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .context("stream timed out")?
            .context("stream ended")??;
        if let Ok(data) = frame.into_data() {
            buf.push_str(&String::from_utf8_lossy(&data));
        }
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = "";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if until.contains(&name) {
                let v = serde_json::from_str(&data).unwrap_or(Value::Null);
                return Ok((name.to_owned(), v));
            }
        }
    }
}
