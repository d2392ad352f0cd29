//! The hold gate of the scaled-out on-sale path on Redis: one key per held seat,
//! `<prefix>hold:{<eventId>}:<seatId>` (the braces make every seat of an event one Redis
//! Cluster slot, so a script may touch them together), whose value is the booking that holds
//! it and whose time to live is the hold's.
//!
//! A hold takes all its seats or none in one Lua script; a release deletes only the keys that
//! still name its booking (compare-and-delete), so a late release never frees another buyer's
//! mark. Expiry is the TTL. The gate is an optimisation, never the fence: the database re-checks
//! every hold, so a mark that vanished (Redis flushed or restarted) only lets a buyer through to
//! the database's refusal, and a mark left behind only refuses a buyer until it expires.

use std::time::Duration;

use async_trait::async_trait;
use boxoffice_domain::ids::{BookingId, EventId, SeatId};
use boxoffice_domain::onsale::{GateError, HoldGate};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// Takes every key (KEYS) for ARGV[1] (the booking) with a TTL of ARGV[2] ms, or none.
/// Returns the indexes (1-based) of the keys held by another booking; empty when taken.
const TAKE: &str = r#"
local taken = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v and v ~= ARGV[1] then
    taken[#taken + 1] = i
  end
end
if #taken > 0 then
  return taken
end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return taken
"#;

/// Deletes every key (KEYS) whose value is still ARGV[1]; returns how many.
const RELEASE: &str = r#"
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    n = n + redis.call('DEL', key)
  end
end
return n
"#;

/// Where the gate lives.
#[derive(Debug, Clone)]
pub struct RedisGateConfig {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Put before every key (tests use one of their own).
    pub prefix: String,
    /// A gate slower than this is skipped for that hold (the database answers instead).
    pub timeout: Duration,
}

impl RedisGateConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: String::new(),
            timeout: Duration::from_millis(250),
        }
    }
}

/// The Redis hold gate. Connects on first use and reconnects by itself.
pub struct RedisHoldGate {
    config: RedisGateConfig,
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    take: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for RedisHoldGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHoldGate")
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

fn gate_error(e: impl std::fmt::Display) -> GateError {
    GateError(e.to_string())
}

impl RedisHoldGate {
    /// Checks the URL; no connection is made until the first hold.
    pub fn new(config: RedisGateConfig) -> Result<Self, GateError> {
        let client = redis::Client::open(config.url.as_str()).map_err(gate_error)?;
        Ok(Self {
            config,
            client,
            conn: OnceCell::new(),
            take: redis::Script::new(TAKE),
            release: redis::Script::new(RELEASE),
        })
    }

    /// The key of one held seat.
    pub fn key(&self, event: EventId, seat: &SeatId) -> String {
        format!("{}hold:{{{event}}}:{seat}", self.config.prefix)
    }

    async fn conn(&self) -> Result<ConnectionManager, GateError> {
        let timeout = self.config.timeout;
        self.conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(gate_error)
            })
            .await
            .cloned()
    }

    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, GateError>>,
    ) -> Result<T, GateError> {
        tokio::time::timeout(self.config.timeout, f)
            .await
            .map_err(|_| GateError("timed out".into()))?
    }
}

#[async_trait]
impl HoldGate for RedisHoldGate {
    async fn take(
        &self,
        event: EventId,
        seats: &[SeatId],
        booking: BookingId,
        ttl: Duration,
    ) -> Result<bool, GateError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.bounded(async {
            let mut conn = self.conn().await?;
            let mut call = self.take.prepare_invoke();
            for s in seats {
                call.key(self.key(event, s));
            }
            call.arg(booking.to_string()).arg(ttl_ms);
            let taken: Vec<i64> = call.invoke_async(&mut conn).await.map_err(gate_error)?;
            Ok(taken.is_empty())
        })
        .await
    }

    async fn release(
        &self,
        event: EventId,
        seats: &[SeatId],
        booking: BookingId,
    ) -> Result<(), GateError> {
        if seats.is_empty() {
            return Ok(());
        }
        self.bounded(async {
            let mut conn = self.conn().await?;
            let mut call = self.release.prepare_invoke();
            for s in seats {
                call.key(self.key(event, s));
            }
            call.arg(booking.to_string());
            let _: i64 = call.invoke_async(&mut conn).await.map_err(gate_error)?;
            Ok(())
        })
        .await
    }
}
