//! The hold gate against the Redis server at 127.0.0.1:6379 (or `BOXOFFICE_TEST_REDIS_URL`),
//! each test under a key prefix of its own so tests run in parallel.

use std::time::Duration;

use boxoffice_domain::ids::{BookingId, EventId, SeatId};
use boxoffice_domain::onsale::HoldGate;
use boxoffice_holds_redis::{RedisGateConfig, RedisHoldGate};

fn url() -> String {
    std::env::var("BOXOFFICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn gate() -> RedisHoldGate {
    let mut config = RedisGateConfig::new(url());
    config.prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
    RedisHoldGate::new(config).expect("gate")
}

fn seats(ids: &[&str]) -> Vec<SeatId> {
    ids.iter()
        .map(|s| SeatId::parse(s).expect("seat"))
        .collect()
}

async fn value(key: &str) -> Option<String> {
    let client = redis::Client::open(url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("get")
}

const TTL: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_hold_takes_all_its_seats_or_none() {
    let gate = gate();
    let event = EventId::new();
    let (a, b) = (BookingId::new(), BookingId::new());
    assert!(
        gate.take(event, &seats(&["1-A-1", "1-A-2"]), a, TTL)
            .await
            .expect("take")
    );
    // One of three is a's: b gets none of them.
    assert!(
        !gate
            .take(event, &seats(&["1-A-2", "1-A-3", "1-A-4"]), b, TTL)
            .await
            .expect("take")
    );
    assert_eq!(
        value(&gate.key(event, &seats(&["1-A-3"])[0])).await,
        None,
        "none taken"
    );
    assert!(
        gate.take(event, &seats(&["1-A-3", "1-A-4"]), b, TTL)
            .await
            .expect("take")
    );
    assert_eq!(
        value(&gate.key(event, &seats(&["1-A-1"])[0])).await,
        Some(a.to_string())
    );
    assert_eq!(
        value(&gate.key(event, &seats(&["1-A-4"])[0])).await,
        Some(b.to_string())
    );
    // The same seat of another event is another key.
    assert!(
        gate.take(EventId::new(), &seats(&["1-A-1"]), b, TTL)
            .await
            .expect("take")
    );
}

#[tokio::test]
async fn a_mark_expires_with_the_hold() {
    let gate = gate();
    let event = EventId::new();
    let s = seats(&["2-B-7"]);
    assert!(
        gate.take(event, &s, BookingId::new(), Duration::from_millis(300))
            .await
            .expect("take")
    );
    assert!(
        !gate
            .take(event, &s, BookingId::new(), TTL)
            .await
            .expect("take")
    );
    // Redis lets the mark go with its TTL: the seat can be taken again soon after.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !gate
        .take(event, &s, BookingId::new(), TTL)
        .await
        .expect("take")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the mark never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_release_deletes_only_its_own_marks() {
    let gate = gate();
    let event = EventId::new();
    let (a, b) = (BookingId::new(), BookingId::new());
    assert!(
        gate.take(event, &seats(&["1-A-1"]), a, TTL)
            .await
            .expect("take")
    );
    assert!(
        gate.take(event, &seats(&["1-A-2"]), b, TTL)
            .await
            .expect("take")
    );
    // a releases both seats it once asked for: only its own mark goes.
    gate.release(event, &seats(&["1-A-1", "1-A-2"]), a)
        .await
        .expect("release");
    assert_eq!(value(&gate.key(event, &seats(&["1-A-1"])[0])).await, None);
    assert_eq!(
        value(&gate.key(event, &seats(&["1-A-2"])[0])).await,
        Some(b.to_string())
    );
    assert!(
        gate.take(event, &seats(&["1-A-1"]), BookingId::new(), TTL)
            .await
            .expect("take")
    );
}

#[tokio::test]
async fn many_buyers_for_one_seat_one_wins() {
    let gate = std::sync::Arc::new(gate());
    let event = EventId::new();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            gate.take(event, &seats(&["3-C-1", "3-C-2"]), BookingId::new(), TTL)
                .await
                .expect("take")
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.expect("task"));
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_refusal() {
    let mut config = RedisGateConfig::new("redis://127.0.0.1:1");
    config.timeout = Duration::from_millis(200);
    let gate = RedisHoldGate::new(config).expect("gate");
    let started = std::time::Instant::now();
    assert!(
        gate.take(EventId::new(), &seats(&["1-A-1"]), BookingId::new(), TTL)
            .await
            .is_err()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
