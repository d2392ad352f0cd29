//! The on-sale waiting room as a service: joining, admission rounds, where each buyer stands,
//! admission tokens, and one status feed per event and node that every stream of that event
//! on the node shares.
//!
//! The room's state lives in the store (so every node sees the same line, and a round run by
//! two nodes at once takes turns on the room's lock); `boxoffice_domain::queue` decides the
//! order and how many to let in. A node runs at most one round per event every
//! [`ROUND_EVERY`], however many buyers poll or stream: the answer of the last round serves
//! them all.
//!
//! Admission tokens are Ed25519 JWTs signed with the ticket key, bound to the customer, the
//! event and the place, and short-lived: any node checks one without asking anyone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boxoffice_domain::event::{Event, WaitingRoom};
use boxoffice_domain::ids::{CustomerId, EventId, QueueId};
use boxoffice_domain::ports::{Clock, Store, StoreError};
use boxoffice_domain::queue::{self, AdmitRound, QueueEntry, QueueJoin, QueueStatus, RoomCounts};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::tickets::TicketSigner;

/// How often a node runs an admission round for an event that someone is waiting for.
pub const ROUND_EVERY: Duration = Duration::from_millis(500);

/// The JWT `typ` of admission tokens.
pub const ADMISSION_TYP: &str = "admission+jwt";

/// What an admission token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionClaims {
    /// The customer let in.
    pub sub: String,
    /// The event.
    pub eid: EventId,
    /// The place in the waiting room.
    pub qid: QueueId,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds): the admission's end.
    pub exp: i64,
}

/// A room as the last round left it.
#[derive(Debug, Clone, Default)]
pub struct RoomSnapshot {
    /// Sort keys of everyone still waiting, in order.
    pub waiting_keys: Vec<i64>,
    pub counts: RoomCounts,
    /// Every seat is sold (none free, none held).
    pub sold_out: bool,
    /// When the round ran.
    pub at: Option<OffsetDateTime>,
}

impl RoomSnapshot {
    /// Buyers waiting ahead of a sort key.
    pub fn ahead_of(&self, key: i64) -> u64 {
        self.waiting_keys.partition_point(|k| *k < key) as u64
    }

    fn is_waiting(&self, key: i64) -> bool {
        self.waiting_keys.binary_search(&key).is_ok()
    }
}

/// A buyer's standing, ready to show.
#[derive(Debug, Clone)]
pub struct Standing {
    pub entry: QueueEntry,
    pub status: QueueStatus,
    /// 1 for the next buyer in, while waiting.
    pub position: Option<u64>,
    pub estimated_wait_seconds: Option<u64>,
    pub admission_token: Option<String>,
    pub admission_expires_at: Option<OffsetDateTime>,
}

/// Why a buyer cannot join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the event has no waiting room")]
    NoWaitingRoom,
    #[error("the waiting room opens at {0}")]
    NotOpen(OffsetDateTime),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The last round of one event on this node, and when it ran.
type RoundSlot = tokio::sync::Mutex<Option<(std::time::Instant, Arc<RoomSnapshot>)>>;

struct Feed {
    tx: watch::Sender<Arc<RoomSnapshot>>,
}

/// Waiting rooms of every event, as this node serves them.
pub struct WaitingRooms {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    signer: Arc<TicketSigner>,
    feeds: Mutex<HashMap<EventId, Feed>>,
    /// One round at a time per event on this node, and not more often than [`ROUND_EVERY`].
    rounds: Mutex<HashMap<EventId, Arc<RoundSlot>>>,
}

impl std::fmt::Debug for WaitingRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitingRooms").finish_non_exhaustive()
    }
}

impl WaitingRooms {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, signer: Arc<TicketSigner>) -> Self {
        Self {
            store,
            clock,
            signer,
            feeds: Mutex::new(HashMap::new()),
            rounds: Mutex::new(HashMap::new()),
        }
    }

    /// Joins `event`'s room (or returns the customer's place there). The second value says
    /// whether the place is new.
    pub async fn join(
        &self,
        event: &Event,
        customer: &CustomerId,
    ) -> Result<(QueueEntry, bool), JoinError> {
        let room = event
            .spec
            .policies
            .waiting_room
            .ok_or(JoinError::NoWaitingRoom)?;
        let now = boxoffice_domain::event::to_micros(self.clock.now());
        if now < room.opens_at {
            return Err(JoinError::NotOpen(room.opens_at));
        }
        let id = QueueId::new_in(event.id.slot());
        let random: u64 = rand::rng().random();
        let entry = self
            .store
            .join_queue(&QueueJoin {
                id,
                event_id: event.id,
                customer: customer.clone(),
                sort_key: queue::sort_key(now, event.spec.on_sale_at, random),
                now,
                lapsed_before: now - room.admission(),
            })
            .await?;
        let fresh = entry.id == id;
        Ok((entry, fresh))
    }

    /// A place in a room, if it exists.
    pub async fn entry(&self, id: QueueId) -> Result<Option<QueueEntry>, StoreError> {
        self.store.queue_entry(id).await
    }

    /// The room after an admission round no older than [`ROUND_EVERY`] (running one if needed).
    pub async fn snapshot(&self, event: &Event) -> Result<Arc<RoomSnapshot>, StoreError> {
        let slot = {
            let mut rounds = self.rounds.lock().unwrap_or_else(|p| p.into_inner());
            if rounds.len() > 10_000 {
                rounds.clear();
            }
            rounds.entry(event.id).or_default().clone()
        };
        let mut last = slot.lock().await;
        if let Some((at, snap)) = last.as_ref()
            && at.elapsed() < ROUND_EVERY
        {
            return Ok(snap.clone());
        }
        let snap = Arc::new(self.round(event).await?);
        *last = Some((std::time::Instant::now(), snap.clone()));
        Ok(snap)
    }

    /// One admission round now.
    async fn round(&self, event: &Event) -> Result<RoomSnapshot, StoreError> {
        let Some(room) = event.spec.policies.waiting_room else {
            return Ok(RoomSnapshot::default());
        };
        let now = boxoffice_domain::event::to_micros(self.clock.now());
        let map = self.store.seat_map(event, now).await?;
        let free: u64 = map.sections.iter().map(|s| u64::from(s.available)).sum();
        let held: u64 = map.sections.iter().map(|s| u64::from(s.held)).sum();
        let counts = self
            .store
            .admit_from_queue(&AdmitRound {
                event_id: event.id,
                now,
                allowance: queue::allowance(&room, event.spec.on_sale_at, now),
                free_seats: free,
                active_since: now - room.admission(),
            })
            .await?;
        let waiting_keys = self.store.queue_waiting_keys(event.id).await?;
        Ok(RoomSnapshot {
            waiting_keys,
            counts,
            sold_out: free == 0 && held == 0,
            at: Some(now),
        })
    }

    /// Where `entry` stands according to `snap`.
    pub fn standing(&self, event: &Event, entry: QueueEntry, snap: &RoomSnapshot) -> Standing {
        let room = event.spec.policies.waiting_room.unwrap_or(WaitingRoom {
            opens_at: event.spec.on_sale_at,
            admit_per_minute: 1,
            admission_minutes: 1,
        });
        let now = self.clock.now();
        let ahead = snap.ahead_of(entry.sort_key);
        let status = queue::status(&entry, &room, now, ahead, snap.sold_out);
        let mut s = Standing {
            status,
            position: None,
            estimated_wait_seconds: None,
            admission_token: None,
            admission_expires_at: None,
            entry,
        };
        match status {
            QueueStatus::Waiting { position } => {
                s.position = Some(position + 1);
                s.estimated_wait_seconds = Some(queue::estimated_wait_seconds(
                    &room,
                    event.spec.on_sale_at,
                    now,
                    position,
                ));
            }
            QueueStatus::Admitted { until } => {
                s.admission_token = Some(self.signer.sign_typed(
                    ADMISSION_TYP,
                    &AdmissionClaims {
                        sub: s.entry.customer.to_string(),
                        eid: s.entry.event_id,
                        qid: s.entry.id,
                        iat: now.unix_timestamp(),
                        exp: until.unix_timestamp(),
                    },
                ));
                s.admission_expires_at = Some(until);
            }
            QueueStatus::SoldOut | QueueStatus::Expired => {}
        }
        s
    }

    /// Where a buyer stands now: after a recent round, reading their place afresh.
    pub async fn stand(&self, event: &Event, id: QueueId) -> Result<Option<Standing>, StoreError> {
        let snap = self.snapshot(event).await?;
        let Some(entry) = self.store.queue_entry(id).await? else {
            return Ok(None);
        };
        Ok(Some(self.standing(event, entry, &snap)))
    }

    /// The room's feed on this node: a round every [`ROUND_EVERY`] while anyone listens.
    pub fn subscribe(self: &Arc<Self>, event: Arc<Event>) -> watch::Receiver<Arc<RoomSnapshot>> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = feeds.get(&event.id) {
            return feed.tx.subscribe();
        }
        let (tx, rx) = watch::channel(Arc::new(RoomSnapshot::default()));
        feeds.insert(event.id, Feed { tx: tx.clone() });
        let rooms = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ROUND_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                {
                    let mut feeds = rooms.feeds.lock().unwrap_or_else(|p| p.into_inner());
                    if tx.receiver_count() == 0 {
                        feeds.remove(&event.id);
                        return;
                    }
                }
                match rooms.snapshot(&event).await {
                    Ok(snap) => {
                        let _ = tx.send(snap);
                    }
                    Err(e) => {
                        tracing::warn!(event_id = %event.id, error = %e, "waiting room round failed")
                    }
                }
            }
        });
        rx
    }

    /// Whether a snapshot still shows this entry waiting (else its place changed: read it again).
    pub fn still_waiting(snap: &RoomSnapshot, entry: &QueueEntry) -> bool {
        entry.admitted_at.is_none() && snap.is_waiting(entry.sort_key)
    }

    /// The claims of a valid admission token for `customer` and `event`.
    pub fn admitted(
        &self,
        token: &str,
        customer: &CustomerId,
        event: EventId,
    ) -> Option<AdmissionClaims> {
        let claims: AdmissionClaims = self.signer.verify_typed(ADMISSION_TYP, token)?;
        let now = self.clock.now().unix_timestamp();
        (claims.sub == customer.as_str() && claims.eid == event && claims.exp > now)
            .then_some(claims)
    }
}
