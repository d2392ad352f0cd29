//! Where a search's time goes, phase by phase, as Prometheus histograms on `/metrics`:
//! `search_phase_seconds{phase=…}` (queue: waiting for a search thread; parse; text: the words
//! through tantivy, typo and prefix expansion included; filter: one pass over the candidates
//! that applies the filters, counts the facets and keeps the best page in a bounded heap;
//! sort; render; total),
//! and counters of answers and word matches served from memory.
//!
//! Recorded through the `metrics` facade, so they go wherever the application installed its
//! recorder (nowhere in library tests).

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    Queue,
    Parse,
    Text,
    Filter,
    Sort,
    Render,
    Total,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Queue => "queue",
            Phase::Parse => "parse",
            Phase::Text => "text",
            Phase::Filter => "filter",
            Phase::Sort => "sort",
            Phase::Render => "render",
            Phase::Total => "total",
        }
    }
}

pub(crate) fn record(phase: Phase, took: Duration) {
    metrics::histogram!("search_phase_seconds", "phase" => phase.label())
        .record(took.as_secs_f64());
}

/// Answers from the answer cache (`hit`) or computed (`miss`).
pub(crate) fn answer(hit: bool) {
    metrics::counter!("search_answers_total", "cache" => if hit { "hit" } else { "miss" })
        .increment(1);
}

/// Query words whose matches were known (`hit`) or looked up in the index (`miss`).
pub(crate) fn words(hits: u64, misses: u64) {
    if hits > 0 {
        metrics::counter!("search_word_matches_total", "cache" => "hit").increment(hits);
    }
    if misses > 0 {
        metrics::counter!("search_word_matches_total", "cache" => "miss").increment(misses);
    }
}
