//! The commit log of the scaled-out on-sale path on NATS JetStream: a work-queue stream of
//! queued purchases and one durable pull consumer that every node's workers share.
//!
//! - A message is a [`QueuedCommit`] (payment, booking and event ids) as JSON; the database
//!   holds everything else. Its `Nats-Msg-Id` is the purchase's provider key, so JetStream
//!   drops a second publication of the same purchase within the duplicate window.
//! - The stream has work-queue retention: an acknowledged (or terminated) message is gone.
//! - The consumer acks explicitly; a message not acked within `ack_wait` (its worker died) or
//!   negatively acked with a delay (a store error) is delivered again, at most `max_deliver`
//!   times. After that it is a dead letter: the worker that gives up on a last delivery
//!   terminates it, and a last delivery that timed out is reported by the server's
//!   MAX_DELIVERIES advisory, which one node (a queue group) counts and removes. Both are in
//!   `/metrics` as `commit_queue_dead_letters_total`. A dead letter loses nothing: its payment
//!   is still STARTED and marked queued, and the reconciler completes it.
//!
//! The stream and consumer are created on first use, so a node starts while NATS is down and
//! catches up when it returns (the client reconnects by itself).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use boxoffice_domain::onsale::{CommitLog, CommitLogError, Delivery, QueuedCommit};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

/// Where the queue lives and how it redelivers.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port`.
    pub url: String,
    /// Stream name; every node of one deployment uses the same.
    pub stream: String,
    /// Subjects are `<subject>.<eventId>`.
    pub subject: String,
    /// Durable consumer shared by every node.
    pub consumer: String,
    /// A delivery not acked by then is delivered again.
    pub ack_wait: Duration,
    /// Deliveries of one message before it is a dead letter.
    pub max_deliver: u32,
    /// A second message with the same id within this window is dropped.
    pub duplicate_window: Duration,
    /// How long a publication waits for the stream's acknowledgement.
    pub publish_timeout: Duration,
    /// How long a pull waits for messages when there are none.
    pub pull_wait: Duration,
}

impl NatsConfig {
    /// The production names at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "BOXOFFICE_COMMITS".into(),
            subject: "BOXOFFICE_COMMITS.commits".into(),
            consumer: "commit-workers".into(),
            ack_wait: Duration::from_secs(60),
            max_deliver: 5,
            duplicate_window: Duration::from_secs(120),
            publish_timeout: Duration::from_secs(2),
            pull_wait: Duration::from_secs(1),
        }
    }
}

impl NatsConfig {
    /// Another stream (and its subjects), for deployments or tests sharing one NATS.
    pub fn with_stream(mut self, name: &str) -> Self {
        self.stream = name.to_owned();
        self.subject = format!("{name}.commits");
        self
    }
}

/// The JetStream commit log.
#[derive(Clone)]
pub struct NatsCommitLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: NatsConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    consumer: OnceCell<consumer::PullConsumer>,
    stream: OnceCell<stream::Stream>,
    dead_letters: AtomicU64,
}

impl std::fmt::Debug for NatsCommitLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCommitLog")
            .field("stream", &self.inner.config.stream)
            .field("consumer", &self.inner.config.consumer)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> CommitLogError {
    CommitLogError::Unavailable(e.to_string())
}

impl NatsCommitLog {
    /// Connects (retrying in the background if NATS is not up yet) and starts counting dead
    /// letters reported by the server.
    pub async fn connect(config: NatsConfig) -> Result<Self, CommitLogError> {
        let client = async_nats::ConnectOptions::new()
            .name("boxoffice")
            .connection_timeout(Duration::from_secs(2))
            .retry_on_initial_connect()
            .connect(config.url.as_str())
            .await
            .map_err(unavailable)?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.publish_timeout);
        let log = Self {
            inner: Arc::new(Inner {
                config,
                client,
                js,
                consumer: OnceCell::new(),
                stream: OnceCell::new(),
                dead_letters: AtomicU64::new(0),
            }),
        };
        log.watch_dead_letters().await?;
        Ok(log)
    }

    /// Dead letters counted by this node since it started.
    pub fn dead_letters(&self) -> u64 {
        self.inner.dead_letters.load(Ordering::Relaxed)
    }

    /// Messages in the stream (not yet acknowledged or given up).
    pub async fn pending(&self) -> Result<u64, CommitLogError> {
        let mut stream = self.stream().await?.clone();
        Ok(stream.info().await.map_err(unavailable)?.state.messages)
    }

    /// Deletes the stream and everything in it (tests clean up their own streams this way).
    pub async fn delete_stream(&self) -> Result<(), CommitLogError> {
        self.inner
            .js
            .delete_stream(&self.inner.config.stream)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn stream(&self) -> Result<&stream::Stream, CommitLogError> {
        let c = &self.inner.config;
        self.inner
            .stream
            .get_or_try_init(|| async {
                self.inner
                    .js
                    .get_or_create_stream(stream::Config {
                        name: c.stream.clone(),
                        subjects: vec![format!("{}.>", c.subject)],
                        retention: stream::RetentionPolicy::WorkQueue,
                        storage: stream::StorageType::File,
                        duplicate_window: c.duplicate_window,
                        ..Default::default()
                    })
                    .await
                    .map_err(unavailable)
            })
            .await
    }

    async fn consumer(&self) -> Result<&consumer::PullConsumer, CommitLogError> {
        let c = &self.inner.config;
        self.inner
            .consumer
            .get_or_try_init(|| async {
                self.stream()
                    .await?
                    .get_or_create_consumer(
                        &c.consumer,
                        consumer::pull::Config {
                            durable_name: Some(c.consumer.clone()),
                            ack_policy: consumer::AckPolicy::Explicit,
                            ack_wait: c.ack_wait,
                            max_deliver: i64::from(c.max_deliver),
                            max_ack_pending: 100_000,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(unavailable)
            })
            .await
    }

    /// The server reports a message whose last delivery timed out (its worker died holding
    /// it) on an advisory subject; one node of the queue group counts it and removes it.
    async fn watch_dead_letters(&self) -> Result<(), CommitLogError> {
        let c = &self.inner.config;
        let subject = format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
            c.stream, c.consumer
        );
        let mut sub = self
            .inner
            .client
            .queue_subscribe(subject, format!("{}-dead-letters", c.consumer))
            .await
            .map_err(unavailable)?;
        let log = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(inner) = log.upgrade() else { break };
                let this = NatsCommitLog { inner };
                let seq = serde_json::from_slice::<serde_json::Value>(&msg.payload)
                    .ok()
                    .and_then(|v| v["stream_seq"].as_u64());
                tracing::warn!(
                    stream_seq = ?seq,
                    "a queued commit was delivered too often without an outcome; the reconciler completes it"
                );
                this.count_dead_letter();
                if let Some(seq) = seq
                    && let Ok(stream) = this.stream().await
                {
                    let _ = stream.delete_message(seq).await;
                }
            }
        });
        Ok(())
    }

    fn count_dead_letter(&self) {
        self.inner.dead_letters.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("commit_queue_dead_letters_total").increment(1);
    }
}

#[async_trait]
impl CommitLog for NatsCommitLog {
    async fn publish(&self, commit: &QueuedCommit) -> Result<(), CommitLogError> {
        self.stream().await?;
        let payload =
            serde_json::to_vec(commit).map_err(|e| CommitLogError::Malformed(e.to_string()))?;
        let subject = format!("{}.{}", self.inner.config.subject, commit.event_id);
        let ack = self
            .inner
            .js
            .send_publish(
                subject,
                jetstream::message::PublishMessage::build()
                    .payload(payload.into())
                    .message_id(&commit.key),
            )
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        if ack.duplicate {
            tracing::debug!(booking_id = %commit.booking_id, "duplicate queued commit dropped by JetStream");
        }
        Ok(())
    }

    async fn pull(&self, max: usize) -> Result<Vec<Box<dyn Delivery>>, CommitLogError> {
        let consumer = self.consumer().await?;
        let mut batch = consumer
            .batch()
            .max_messages(max)
            .expires(self.inner.config.pull_wait)
            .messages()
            .await
            .map_err(unavailable)?;
        let mut out: Vec<Box<dyn Delivery>> = Vec::new();
        while let Some(msg) = batch.next().await {
            let msg = match msg {
                Ok(m) => m,
                // Whatever arrived is still ours to settle; the rest comes next time.
                Err(e) if !out.is_empty() => {
                    tracing::debug!(error = %e, "pull ended early");
                    break;
                }
                Err(e) => return Err(unavailable(e)),
            };
            let attempt = msg
                .info()
                .map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX))
                .unwrap_or(1);
            let commit = serde_json::from_slice::<QueuedCommit>(&msg.payload)
                .map_err(|e| CommitLogError::Malformed(e.to_string()));
            out.push(Box::new(NatsDelivery {
                msg,
                commit,
                attempt,
                log: self.clone(),
            }));
        }
        Ok(out)
    }

    fn max_deliver(&self) -> u32 {
        self.inner.config.max_deliver
    }
}

/// One delivery of a queued commit.
struct NatsDelivery {
    msg: jetstream::Message,
    commit: Result<QueuedCommit, CommitLogError>,
    attempt: u32,
    log: NatsCommitLog,
}

impl std::fmt::Debug for NatsDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsDelivery")
            .field("commit", &self.commit)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Delivery for NatsDelivery {
    fn commit(&self) -> Result<&QueuedCommit, &CommitLogError> {
        self.commit.as_ref()
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    async fn ack(self: Box<Self>) -> Result<(), CommitLogError> {
        // A double ack waits for the server's confirmation, so an acknowledged purchase is
        // not delivered again after a lost ack.
        self.msg.double_ack().await.map_err(unavailable)
    }

    async fn retry(self: Box<Self>, delay: Duration) -> Result<(), CommitLogError> {
        self.msg
            .ack_with(jetstream::AckKind::Nak(Some(delay)))
            .await
            .map_err(unavailable)
    }

    async fn give_up(self: Box<Self>) -> Result<(), CommitLogError> {
        self.log.count_dead_letter();
        self.msg
            .ack_with(jetstream::AckKind::Term)
            .await
            .map_err(unavailable)
    }
}
