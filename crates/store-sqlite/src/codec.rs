//! Conversions between domain values and SQLite's column types.

use boxoffice_domain::ports::StoreError;
use rusqlite::ErrorCode;
use time::OffsetDateTime;
use uuid::Uuid;

/// Times are stored as integer microseconds since the Unix epoch (PostgreSQL's precision).
pub fn ts(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub fn from_ts(micros: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

/// Uuids are stored as their 16 bytes.
pub fn id(u: Uuid) -> [u8; 16] {
    *u.as_bytes()
}

#[allow(dead_code)] // used by the booking tables
pub fn uuid_from(bytes: Vec<u8>) -> rusqlite::Result<Uuid> {
    Uuid::from_slice(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

pub fn corrupt(what: impl Into<String>) -> rusqlite::Error {
    let msg: String = what.into();
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::<dyn std::error::Error + Send + Sync>::from(msg),
    )
}

pub fn store_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(format!("sqlite busy: {e}"))
        }
        _ => StoreError::Internal(format!("sqlite: {e}")),
    }
}

/// A driver result as a store result.
pub fn sq<T>(r: rusqlite::Result<T>) -> Result<T, StoreError> {
    r.map_err(store_error)
}
