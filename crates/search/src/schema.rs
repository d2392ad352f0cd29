//! What the tantivy index holds per event, and how text is analysed.

use boxoffice_domain::event::Category;
use boxoffice_domain::feed::CatalogEntry;
use serde::{Deserialize, Serialize};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, SimpleTokenizer, TextAnalyzer};
use tantivy::{Index, TantivyDocument};
use uuid::Uuid;

/// Bumped whenever the schema or the stored source changes shape: an index of another
/// version is rebuilt rather than read.
pub const SCHEMA_VERSION: u32 = 2;

/// Lower-cased, accents folded (`Björk` → `bjork`, `Beyoncé` → `beyonce`), split on anything
/// that is not a letter or digit. Queries go through the same analyser.
pub const ANALYZER: &str = "folded";

#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The event id as text, for deleting and replacing an event's document.
    pub id: Field,
    /// Name and performers: what people type first.
    pub title: Field,
    /// Everything searchable: name, performers, venue, city, description.
    pub text: Field,
    /// The venue's zip code as one term: a zip filter reads its posting list instead of
    /// scanning every event.
    pub zip: Field,
    /// Position of the event in the in-memory catalog (see `catalog`).
    pub slot: Field,
    /// The [`Source`], as JSON: what the in-memory catalog is rebuilt from at start.
    pub source: Field,
}

pub fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            // Scores are computed from which words matched where, never from term
            // frequencies, so frequencies and positions are not stored.
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        id: b.add_text_field("id", STRING),
        title: b.add_text_field("title", text_options.clone()),
        text: b.add_text_field("text", text_options),
        zip: b.add_text_field("zip", STRING),
        slot: b.add_u64_field("slot", FAST | STORED),
        source: b.add_bytes_field("source", STORED),
    };
    (b.build(), fields)
}

pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

pub fn register(index: &Index) {
    index.tokenizers().register(ANALYZER, analyzer());
}

/// Everything search knows about one event: indexed text, filter values, what a hit shows,
/// and the seats left. Stored with the document so that a node restarts without the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: Uuid,
    pub name: String,
    pub performers: Vec<String>,
    pub category: Category,
    pub description: String,
    /// Unix seconds.
    pub starts_at: i64,
    pub venue: String,
    pub city: String,
    pub zip_code: String,
    pub country: String,
    pub lat: f64,
    pub lon: f64,
    pub min_price_cents: i64,
    pub max_price_cents: i64,
    pub currency: String,
    pub capacity: u32,
    pub available: u32,
    /// Unix seconds.
    pub on_sale_at: i64,
    /// Called off by its organizer: shown CANCELLED, never available.
    pub cancelled: bool,
}

impl Source {
    /// A hash of everything but the seat count: whether an event changed beyond its seats,
    /// without keeping its text twice. Names every field, so a new one cannot be forgotten.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let Self {
            id,
            name,
            performers,
            category,
            description,
            starts_at,
            venue,
            city,
            zip_code,
            country,
            lat,
            lon,
            min_price_cents,
            max_price_cents,
            currency,
            capacity,
            available: _,
            on_sale_at,
            cancelled,
        } = self;
        let mut h = std::hash::DefaultHasher::new();
        (id, name, performers, description, starts_at, venue, city).hash(&mut h);
        (zip_code, country, lat.to_bits(), lon.to_bits()).hash(&mut h);
        (min_price_cents, max_price_cents, currency, capacity).hash(&mut h);
        (on_sale_at, cancelled, category.as_str()).hash(&mut h);
        h.finish()
    }

    pub fn from_entry(entry: &CatalogEntry) -> Self {
        let e = &entry.event;
        let s = &e.spec;
        Self {
            id: e.id.0,
            name: s.name.clone(),
            performers: s.performers.clone(),
            category: s.category,
            description: s.description.clone(),
            starts_at: s.starts_at.unix_timestamp(),
            venue: s.venue.name.clone(),
            city: s.venue.city.clone(),
            zip_code: s.venue.zip_code.clone(),
            country: s.venue.country.clone(),
            lat: s.venue.lat,
            lon: s.venue.lon,
            min_price_cents: s.min_price().cents(),
            max_price_cents: s.max_price().cents(),
            currency: s.currency.to_string(),
            capacity: s.capacity(),
            available: if e.cancelled_at.is_some() {
                0
            } else {
                entry.available.min(u64::from(s.capacity())) as u32
            },
            on_sale_at: s.on_sale_at.unix_timestamp(),
            cancelled: e.cancelled_at.is_some(),
        }
    }

    pub fn document(&self, f: &Fields, slot: u32) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, self.id.to_string());
        doc.add_text(f.title, &self.name);
        for p in &self.performers {
            doc.add_text(f.title, p);
        }
        for t in [&self.name, &self.venue, &self.city, &self.description] {
            doc.add_text(f.text, t);
        }
        for p in &self.performers {
            doc.add_text(f.text, p);
        }
        if !self.zip_code.is_empty() {
            doc.add_text(f.zip, &self.zip_code);
        }
        doc.add_u64(f.slot, u64::from(slot));
        doc.add_bytes(
            f.source,
            &serde_json::to_vec(self).expect("a source always serialises"),
        );
        doc
    }

    pub fn from_document(doc: &TantivyDocument, f: &Fields) -> Option<(u32, Self)> {
        let slot = doc.get_first(f.slot)?.as_u64()?;
        let bytes = doc.get_first(f.source)?.as_bytes()?;
        Some((
            u32::try_from(slot).ok()?,
            serde_json::from_slice(bytes).ok()?,
        ))
    }
}
