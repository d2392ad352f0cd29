//! Typo candidates from the index's own words, without Levenshtein automata.
//!
//! A query word with a typo used to cost a Levenshtein automaton (one typo for words of 4–7
//! letters, two from 8) built for that word and walked over the term dictionaries: most of a
//! distinct search's time, since every typo is a new word. The index's vocabulary is small
//! (artist, tour, venue and city names, description words), so instead every word of it is
//! filed under the strings left after deleting up to two of its letters (symmetric delete,
//! as SymSpell does): two words are within `d` edits (insertions, deletions, substitutions,
//! swaps of neighbours) only if deleting at most `d` letters from each leaves a common string.
//! A query word's deletions are looked up, and each candidate is confirmed with the exact
//! distance. Only the first [`PREFIX`] letters are used for the deletions, which bounds the
//! entries per word and misses nothing (the distance check reads the whole words).
//!
//! A vocabulary belongs to one index generation. Until the current generation's is built (in
//! the background, seconds at most), searches use the automata as before, so a new event's
//! words are found with typos at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tantivy::Searcher;
use tantivy::schema::Field;

/// Letters of a word that its deletions are made from.
const PREFIX: usize = 7;

/// The most typos any word is allowed (words of 8 letters and more).
const MAX_TYPOS: u8 = 2;

/// The words of one index generation, filed under their deletions.
pub struct Vocabulary {
    generation: u64,
    terms: Vec<Box<str>>,
    /// (hash of a deletion, index into `terms`), sorted.
    deletes: Vec<(u32, u32)>,
    /// Where in `deletes` each run of hashes with the same top `bits` bits starts (and, last,
    /// its length): a deletion is found with two reads, where a binary search over a million
    /// entries took twenty, most of them cache misses.
    buckets: Vec<u32>,
    bits: u32,
}

impl std::fmt::Debug for Vocabulary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocabulary")
            .field("generation", &self.generation)
            .field("terms", &self.terms.len())
            .field("deletes", &self.deletes.len())
            .finish()
    }
}

impl Vocabulary {
    /// Every word of `field` in `searcher`'s segments, as of `generation`.
    pub fn build(searcher: &Searcher, field: Field, generation: u64) -> tantivy::Result<Self> {
        let mut words: Vec<Box<str>> = Vec::new();
        for segment in searcher.segment_readers() {
            let index = segment.inverted_index(field)?;
            let mut stream = index.terms().stream()?;
            while stream.advance() {
                if let Ok(w) = std::str::from_utf8(stream.key())
                    && w.chars().count() >= 3
                {
                    words.push(w.into());
                }
            }
        }
        words.sort_unstable();
        words.dedup();
        Ok(Self::from_words(words, generation))
    }

    fn from_words(terms: Vec<Box<str>>, generation: u64) -> Self {
        let mut deletes = Vec::with_capacity(terms.len() * 24);
        let mut seen = HashSet::new();
        for (i, term) in terms.iter().enumerate() {
            let chars: Vec<char> = term.chars().collect();
            // A word of 3–5 letters is at most one typo from any query word that may have
            // typos (4–7 letters: one; 8 and more: two, which cannot reach 5 letters).
            let most = if chars.len() <= 5 { 1 } else { MAX_TYPOS };
            seen.clear();
            deletions(&chars[..chars.len().min(PREFIX)], most, &mut seen);
            deletes.extend(seen.iter().map(|&h| (h, i as u32)));
        }
        deletes.sort_unstable();
        // About two entries a bucket.
        let bits = (deletes.len() / 2).max(1).ilog2().clamp(1, 24);
        let mut buckets = Vec::with_capacity((1 << bits) + 1);
        for b in 0..=(1u64 << bits) {
            buckets.push(deletes.partition_point(|&(h, _)| u64::from(h) >> (32 - bits) < b) as u32);
        }
        Self {
            generation,
            terms,
            deletes,
            buckets,
            bits,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many words it holds.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Bytes held, roughly.
    pub fn bytes(&self) -> usize {
        self.deletes.len() * std::mem::size_of::<(u32, u32)>()
            + self.buckets.len() * std::mem::size_of::<u32>()
            + self
                .terms
                .iter()
                .map(|t| t.len() + std::mem::size_of::<Box<str>>())
                .sum::<usize>()
    }

    /// The words within `typos` edits of `word` (insertions, deletions, substitutions and
    /// swaps of neighbours, each one edit), `word` itself excluded.
    pub fn near(&self, word: &str, typos: u8) -> Vec<&str> {
        let chars: Vec<char> = word.chars().collect();
        let mut keys = HashSet::new();
        deletions(&chars[..chars.len().min(PREFIX)], typos, &mut keys);
        let mut candidates: Vec<u32> = Vec::new();
        for key in keys {
            let b = (key >> (32 - self.bits)) as usize;
            let bucket = &self.deletes[self.buckets[b] as usize..self.buckets[b + 1] as usize];
            candidates.extend(bucket.iter().filter(|&&(h, _)| h == key).map(|&(_, t)| t));
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .map(|t| &*self.terms[t as usize])
            .filter(|t| *t != word && within(&chars, t, typos))
            .collect()
    }
}

/// Hashes of `chars` and of every string left after deleting up to `most` of its letters.
fn deletions(chars: &[char], most: u8, out: &mut HashSet<u32>) {
    if !out.insert(hash(chars)) || most == 0 || chars.len() <= 1 {
        return;
    }
    let mut shorter: Vec<char> = Vec::with_capacity(chars.len() - 1);
    for skip in 0..chars.len() {
        shorter.clear();
        shorter.extend(
            chars
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != skip)
                .map(|(_, &c)| c),
        );
        deletions(&shorter, most - 1, out);
    }
}

/// FNV-1a over the characters: collisions only add candidates, which the distance removes.
fn hash(chars: &[char]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &c in chars {
        for b in (c as u32).to_le_bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// Whether `b` is within `most` edits of `a` (optimal string alignment: insertions,
/// deletions, substitutions and swaps of neighbours).
fn within(a: &[char], b: &str, most: u8) -> bool {
    let b: Vec<char> = b.chars().collect();
    let most = usize::from(most);
    if a.len().abs_diff(b.len()) > most {
        return false;
    }
    let (n, m) = (a.len(), b.len());
    // Three rows of the distance table: two back (for swaps), one back, and this one.
    let mut two: Vec<usize> = vec![0; m + 1];
    let mut one: Vec<usize> = (0..=m).collect();
    let mut row: Vec<usize> = vec![0; m + 1];
    for i in 1..=n {
        row[0] = i;
        let mut best = row[0];
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (one[j] + 1).min(row[j - 1] + 1).min(one[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(two[j - 2] + 1);
            }
            row[j] = d;
            best = best.min(d);
        }
        if best > most {
            return false;
        }
        std::mem::swap(&mut two, &mut one);
        std::mem::swap(&mut one, &mut row);
    }
    one[m] <= most
}

/// The vocabulary of the latest generation built, and at most one build under way.
#[derive(Debug, Default)]
pub struct Vocabularies {
    built: Mutex<Option<Arc<Vocabulary>>>,
    building: AtomicBool,
}

impl Vocabularies {
    /// The vocabulary of `generation` if it is built; if not, `None`, and a build for
    /// `searcher` (which must be of `generation`) starts in the background unless one is
    /// under way.
    pub fn get(
        self: &Arc<Self>,
        searcher: &Searcher,
        field: Field,
        generation: u64,
    ) -> Option<Arc<Vocabulary>> {
        if let Some(v) = self.built.lock().as_ref()
            && v.generation == generation
        {
            return Some(v.clone());
        }
        if !self.building.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            let searcher = searcher.clone();
            let started = std::thread::Builder::new()
                .name("search-vocabulary".into())
                .spawn(move || {
                    let took = std::time::Instant::now();
                    match Vocabulary::build(&searcher, field, generation) {
                        Ok(v) => {
                            metrics::gauge!("search_vocabulary_words").set(v.len() as f64);
                            metrics::gauge!("search_vocabulary_bytes").set(v.bytes() as f64);
                            metrics::histogram!("search_vocabulary_build_seconds")
                                .record(took.elapsed().as_secs_f64());
                            this.put(v);
                        }
                        Err(e) => tracing::warn!(error = %e, "building the typo vocabulary"),
                    }
                    this.building.store(false, Ordering::Release);
                });
            if started.is_err() {
                self.building.store(false, Ordering::Release);
            }
        }
        None
    }

    /// Keeps `v` unless a later generation's is kept already.
    pub fn put(&self, v: Vocabulary) {
        let mut built = self.built.lock();
        if built.as_ref().is_none_or(|b| b.generation <= v.generation) {
            *built = Some(Arc::new(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary(words: &[&str]) -> Vocabulary {
        let mut w: Vec<Box<str>> = words.iter().map(|w| (*w).into()).collect();
        w.sort_unstable();
        w.dedup();
        Vocabulary::from_words(w, 1)
    }

    fn brute(words: &[&str], word: &str, typos: u8) -> Vec<String> {
        let chars: Vec<char> = word.chars().collect();
        let mut out: Vec<String> = words
            .iter()
            .filter(|w| w.chars().count() >= 3 && **w != word && within(&chars, w, typos))
            .map(|w| (*w).to_owned())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    #[test]
    fn distance_counts_each_kind_of_edit_once() {
        let d = |a: &str, b: &str, most| within(&a.chars().collect::<Vec<_>>(), b, most);
        assert!(d("coldplay", "coldplay", 0));
        assert!(d("coldplay", "coldpay", 1)); // deletion
        assert!(d("coldplay", "coldpllay", 1)); // insertion
        assert!(d("coldplay", "coldplby", 1)); // substitution
        assert!(d("coldplay", "cloddplay", 2)); // swap and insertion
        assert!(d("coldplay", "coldpaly", 1)); // swap of neighbours
        assert!(!d("coldplay", "cdlopaly", 2));
        assert!(!d("abc", "abcdef", 2));
        assert!(d("beyonce", "beyoncé", 1));
    }

    #[test]
    fn near_finds_exactly_what_a_full_comparison_finds() {
        // A vocabulary with near neighbours, long words (deletions only over their first
        // letters) and words that differ past the prefix.
        let words = [
            "coldplay",
            "coldplays",
            "colplay",
            "taylor",
            "tayler",
            "tailor",
            "swift",
            "swifts",
            "madison",
            "madisson",
            "square",
            "garden",
            "gardens",
            "springsteen",
            "springsteem",
            "sprinsteen",
            "philadelphia",
            "philadelphai",
            "metallica",
            "metalica",
            "wembley",
            "wembly",
            "stadium",
            "stadiums",
            "arena",
            "arenas",
            "live",
            "love",
            "lives",
            "accordingly",
            "accordingle",
            "accordions",
            "abcdefghij",
            "abcdefgxyz",
            "bjork",
        ];
        let v = vocabulary(&words);
        let mut queries: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        // Every word with each single edit at its start, middle and end, and a few doubles.
        for w in words {
            let c: Vec<char> = w.chars().collect();
            for at in [0, c.len() / 2, c.len() - 1] {
                let mut del = c.clone();
                del.remove(at);
                queries.push(del.iter().collect());
                let mut sub = c.clone();
                sub[at] = 'q';
                queries.push(sub.iter().collect());
                let mut ins = c.clone();
                ins.insert(at, 'z');
                queries.push(ins.iter().collect());
                if at + 1 < c.len() {
                    let mut swap = c.clone();
                    swap.swap(at, at + 1);
                    queries.push(swap.iter().collect());
                    let mut two = swap.clone();
                    two.insert(0, 'x');
                    queries.push(two.iter().collect());
                }
            }
        }
        for q in &queries {
            let len = q.chars().count();
            if len < 4 {
                continue;
            }
            let typos = if len >= 8 { 2 } else { 1 };
            let mut got: Vec<String> = v.near(q, typos).into_iter().map(str::to_owned).collect();
            got.sort_unstable();
            assert_eq!(
                got,
                brute(&words, q, typos),
                "query {q:?} with {typos} typos"
            );
        }
    }

    #[test]
    fn the_latest_generation_is_kept() {
        let all = Vocabularies::default();
        all.put(Vocabulary::from_words(vec!["alpha".into()], 3));
        all.put(Vocabulary::from_words(vec!["beta".into()], 2));
        assert_eq!(all.built.lock().as_ref().map(|v| v.generation), Some(3));
    }
}
