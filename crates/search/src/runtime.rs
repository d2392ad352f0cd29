//! The CPU side of serving: a fixed pool of search threads, and a cache of answers.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use parking_lot::Mutex as FastMutex;

use crate::engine::Outcome;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Searches run here, never on the async runtime's threads: one thread per core, and a bounded
/// queue in front, so that overload is answered quickly (503) instead of queueing without end.
#[derive(Debug, Clone)]
pub struct Pool {
    tx: SyncSender<Job>,
}

impl Pool {
    pub fn new(threads: usize, queue: usize) -> Self {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("search-{i}"))
                .spawn(move || worker(&rx))
                .expect("spawning a search thread");
        }
        Self { tx }
    }

    /// Runs `f` on the pool; `None` when the queue is full.
    pub async fn run<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        match self.tx.try_send(job) {
            Ok(()) => result.await.ok(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => None,
        }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        job();
    }
}

const SHARDS: usize = 16;

/// Which events, and for `availableOnly` which sold-out flags, an answer was computed from.
pub type Generation = (u64, u64);

/// Answers by request — the page's events, cursor and counts, not the rendered text: seats
/// left and sale status are rendered from their live values on every hit — valid for one
/// generation: a changed event retires every entry at once, an event sold out (or back) those
/// of `availableOnly` searches. Popular searches repeat, so most of them are answered from
/// here between changes.
type Shard = FastMutex<HashMap<String, (Generation, Arc<Outcome>)>>;

#[derive(Debug)]
pub struct Cache {
    shards: Vec<Shard>,
    per_shard: usize,
}

impl Cache {
    pub fn new(entries: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| FastMutex::new(HashMap::new()))
                .collect(),
            per_shard: entries / SHARDS,
        }
    }

    fn shard(&self, key: &str) -> &Shard {
        let mut h: u32 = 2_166_136_261;
        for b in key.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(16_777_619);
        }
        &self.shards[h as usize % SHARDS]
    }

    pub fn get(&self, key: &str, generation: Generation) -> Option<Arc<Outcome>> {
        if self.per_shard == 0 {
            return None;
        }
        match self.shard(key).lock().get(key) {
            Some((g, body)) if *g == generation => Some(body.clone()),
            _ => None,
        }
    }

    pub fn put(&self, key: String, generation: Generation, body: Arc<Outcome>) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&key).lock();
        if shard.len() >= self.per_shard {
            // Drop what an older generation left, or everything if the shard is current.
            shard.retain(|_, (g, _)| *g == generation);
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(key, (generation, body));
    }
}
