//! The commit log against the NATS server at 127.0.0.1:4222 (or `BOXOFFICE_TEST_NATS_URL`),
//! each test on a stream and consumer of its own so tests run in parallel.

use std::time::{Duration, Instant};

use boxoffice_domain::ids::{BookingId, EventId, PaymentId};
use boxoffice_domain::onsale::{CommitLog, Delivery, QueuedCommit};
use boxoffice_queue_nats::{NatsCommitLog, NatsConfig};

async fn log(ack_wait: Duration, max_deliver: u32) -> NatsCommitLog {
    let url =
        std::env::var("BOXOFFICE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut config = NatsConfig::new(url);
    config.stream = format!("TEST_{id}");
    config.subject = format!("test.{id}");
    config.consumer = format!("workers-{id}");
    config.ack_wait = ack_wait;
    config.max_deliver = max_deliver;
    config.pull_wait = Duration::from_millis(300);
    NatsCommitLog::connect(config).await.expect("connect")
}

fn commit() -> QueuedCommit {
    QueuedCommit {
        payment_id: PaymentId::new(),
        booking_id: BookingId::new(),
        event_id: EventId::new(),
        key: format!("alice:{}", uuid::Uuid::new_v4()),
    }
}

/// Pulls until something arrives or `within` passes.
async fn pull_some(log: &NatsCommitLog, within: Duration) -> Vec<Box<dyn Delivery>> {
    let deadline = Instant::now() + within;
    loop {
        let got = log.pull(16).await.expect("pull");
        if !got.is_empty() || Instant::now() > deadline {
            return got;
        }
    }
}

#[tokio::test]
async fn a_published_commit_is_delivered_once_and_gone_when_acked() {
    let log = log(Duration::from_secs(30), 5).await;
    let c = commit();
    log.publish(&c).await.expect("publish");
    let got = pull_some(&log, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].commit().expect("parsed"), &c);
    assert_eq!(got[0].attempt(), 1);
    for d in got {
        d.ack().await.expect("ack");
    }
    assert!(log.pull(16).await.expect("pull").is_empty());
    assert_eq!(
        log.pending().await.expect("info"),
        0,
        "work queue keeps nothing acked"
    );
    log.delete_stream().await.expect("cleanup");
}

#[tokio::test]
async fn a_second_message_with_the_same_key_is_dropped() {
    let log = log(Duration::from_secs(30), 5).await;
    let c = commit();
    log.publish(&c).await.expect("publish");
    log.publish(&c)
        .await
        .expect("duplicate publish is not an error");
    let mut other = commit();
    other.key = c.key.clone();
    log.publish(&other).await.expect("same key, other body");
    assert_eq!(log.pending().await.expect("info"), 1);
    let got = pull_some(&log, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].commit().expect("parsed"), &c);
    log.delete_stream().await.expect("cleanup");
}

#[tokio::test]
async fn an_unacked_delivery_comes_back_after_ack_wait() {
    let log = log(Duration::from_secs(1), 5).await;
    let c = commit();
    log.publish(&c).await.expect("publish");
    let first = pull_some(&log, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1);
    drop(first); // a worker that died holding it
    let again = pull_some(&log, Duration::from_secs(10)).await;
    assert_eq!(again.len(), 1, "redelivered");
    assert_eq!(again[0].commit().expect("parsed"), &c);
    assert_eq!(again[0].attempt(), 2);
    log.delete_stream().await.expect("cleanup");
}

#[tokio::test]
async fn a_retry_comes_back_after_its_delay() {
    let log = log(Duration::from_secs(30), 5).await;
    log.publish(&commit()).await.expect("publish");
    let first = pull_some(&log, Duration::from_secs(5)).await;
    let started = Instant::now();
    for d in first {
        d.retry(Duration::from_millis(700)).await.expect("nak");
    }
    let again = pull_some(&log, Duration::from_secs(10)).await;
    assert_eq!(again.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(again[0].attempt(), 2);
    log.delete_stream().await.expect("cleanup");
}

#[tokio::test]
async fn giving_up_on_the_last_delivery_counts_a_dead_letter() {
    let log = log(Duration::from_secs(30), 3).await;
    log.publish(&commit()).await.expect("publish");
    loop {
        let got = pull_some(&log, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 1);
        let d = got.into_iter().next().expect("one");
        if d.attempt() >= log.max_deliver() {
            d.give_up().await.expect("term");
            break;
        }
        d.retry(Duration::from_millis(50)).await.expect("nak");
    }
    assert_eq!(log.dead_letters(), 1);
    until_empty(&log).await;
    assert!(log.pull(16).await.expect("pull").is_empty());
    log.delete_stream().await.expect("cleanup");
}

#[tokio::test]
async fn a_last_delivery_that_times_out_is_counted_from_the_advisory() {
    let log = log(Duration::from_secs(1), 2).await;
    log.publish(&commit()).await.expect("publish");
    for attempt in 1..=2 {
        let got = pull_some(&log, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].attempt(), attempt);
        drop(got); // never acked
    }
    // The server notices at the next pull after the last ack wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.dead_letters() == 0 {
        assert!(Instant::now() < deadline, "no dead letter counted");
        assert!(log.pull(16).await.expect("pull").is_empty());
    }
    assert_eq!(log.dead_letters(), 1);
    until_empty(&log).await;
    log.delete_stream().await.expect("cleanup");
}

/// Waits (at most 10 s) until the stream holds no message: a terminated or removed delivery
/// leaves the work queue a moment after it is answered.
async fn until_empty(log: &NatsCommitLog) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.pending().await.expect("info") != 0 {
        assert!(
            Instant::now() < deadline,
            "the message never left the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
