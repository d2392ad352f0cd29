-- boxoffice schema for the embedded store, version 1. Never edit a migration once it has
-- landed: add a new one. Mirrors the PostgreSQL schema; ids are 16-byte blobs, times are
-- integer microseconds since the Unix epoch.

CREATE TABLE venues (
    venue_id  BLOB PRIMARY KEY,
    name      TEXT NOT NULL,
    address   TEXT NOT NULL,
    city      TEXT NOT NULL,
    zip_code  TEXT NOT NULL,
    country   TEXT NOT NULL,
    lat       REAL NOT NULL,
    lon       REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE events (
    event_id                 BLOB PRIMARY KEY,
    organizer_id             TEXT NOT NULL,
    venue_id                 BLOB NOT NULL REFERENCES venues,
    name                     TEXT NOT NULL,
    performers               TEXT NOT NULL,
    category                 TEXT NOT NULL,
    description              TEXT NOT NULL,
    starts_at                INTEGER NOT NULL,
    on_sale_at               INTEGER NOT NULL,
    currency                 TEXT NOT NULL,
    max_tickets_per_customer INTEGER NOT NULL CHECK (max_tickets_per_customer > 0),
    refund_window_hours      INTEGER NOT NULL CHECK (refund_window_hours >= 0),
    resale_max_price_percent INTEGER NOT NULL CHECK (resale_max_price_percent >= 0),
    seats_laid_out           INTEGER NOT NULL,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX events_organizer ON events (organizer_id);

CREATE TABLE sections (
    event_id      BLOB NOT NULL REFERENCES events ON DELETE CASCADE,
    section_no    INTEGER NOT NULL,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('SEATED', 'GA')),
    rows          INTEGER,
    seats_per_row INTEGER,
    capacity      INTEGER NOT NULL CHECK (capacity > 0),
    price_cents   INTEGER NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (event_id, section_no)
) WITHOUT ROWID;

CREATE TABLE seats (
    event_id        BLOB NOT NULL,
    seat_id         TEXT NOT NULL,
    section_no      INTEGER NOT NULL,
    row_index       INTEGER NOT NULL,
    row_label       TEXT,
    number          INTEGER NOT NULL,
    price_cents     INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'OPEN' CHECK (state IN ('OPEN', 'HOLD', 'PENDING', 'SOLD')),
    hold_expires_at INTEGER,
    booking_id      BLOB,
    version         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, seat_id),
    CHECK ((state = 'OPEN') = (booking_id IS NULL)),
    CHECK (state NOT IN ('HOLD', 'PENDING') OR hold_expires_at IS NOT NULL)
) WITHOUT ROWID;
CREATE INDEX seats_by_position ON seats (event_id, section_no, row_index, number);
CREATE INDEX seats_by_booking ON seats (booking_id) WHERE booking_id IS NOT NULL;
CREATE INDEX seats_expiring ON seats (hold_expires_at) WHERE state = 'HOLD';

CREATE TABLE bookings (
    booking_id    BLOB PRIMARY KEY,
    event_id      BLOB NOT NULL REFERENCES events,
    customer_id   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('HOLD', 'PENDING', 'CONFIRMED', 'CANCELLED', 'EXPIRED')),
    expires_at    INTEGER NOT NULL,
    total_cents   INTEGER NOT NULL CHECK (total_cents >= 0),
    currency      TEXT NOT NULL,
    quantity      INTEGER NOT NULL CHECK (quantity > 0),
    contact_email TEXT,
    attendees     TEXT NOT NULL DEFAULT '[]',
    listing_id    BLOB,
    confirmed_at  INTEGER,
    cancelled_at  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    version       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX bookings_by_customer ON bookings (customer_id, created_at);
CREATE INDEX bookings_open_holds ON bookings (expires_at) WHERE status = 'HOLD';
CREATE INDEX bookings_pending ON bookings (updated_at) WHERE status = 'PENDING';

CREATE TABLE booking_seats (
    booking_id  BLOB NOT NULL REFERENCES bookings ON DELETE CASCADE,
    event_id    BLOB NOT NULL,
    seat_id     TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    PRIMARY KEY (booking_id, seat_id)
) WITHOUT ROWID;

CREATE TABLE customer_event_tickets (
    event_id    BLOB NOT NULL,
    customer_id TEXT NOT NULL,
    tickets     INTEGER NOT NULL CHECK (tickets >= 0),
    PRIMARY KEY (event_id, customer_id)
) WITHOUT ROWID;

CREATE TABLE tickets (
    ticket_id     BLOB PRIMARY KEY,
    event_id      BLOB NOT NULL,
    booking_id    BLOB NOT NULL REFERENCES bookings,
    seat_id       TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('VALID', 'USED', 'VOID')),
    token         TEXT NOT NULL,
    attendee_name TEXT,
    issued_at     INTEGER NOT NULL,
    checked_in_at INTEGER,
    voided_at     INTEGER
) WITHOUT ROWID;
CREATE UNIQUE INDEX tickets_one_live_per_seat ON tickets (event_id, seat_id) WHERE status <> 'VOID';
CREATE INDEX tickets_by_customer ON tickets (customer_id, issued_at);
CREATE INDEX tickets_by_booking ON tickets (booking_id);

CREATE TABLE payments (
    payment_id      BLOB PRIMARY KEY,
    event_id        BLOB NOT NULL,
    booking_id      BLOB NOT NULL REFERENCES bookings,
    customer_id     TEXT NOT NULL,
    provider        TEXT NOT NULL,
    provider_ref    TEXT,
    idempotency_key TEXT NOT NULL UNIQUE,
    method          TEXT NOT NULL,
    amount_cents    INTEGER NOT NULL CHECK (amount_cents >= 0),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('STARTED', 'AUTHORIZED', 'CAPTURED', 'DECLINED', 'FAILED', 'VOIDED', 'REFUND_PENDING', 'REFUNDED')),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX payments_by_booking ON payments (booking_id);
CREATE INDEX payments_unsettled ON payments (updated_at) WHERE status IN ('STARTED', 'AUTHORIZED', 'REFUND_PENDING');

CREATE TABLE idempotency_keys (
    customer_id     TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    event_id        BLOB NOT NULL,
    booking_id      BLOB NOT NULL,
    payment_id      BLOB NOT NULL,
    fingerprint     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('IN_FLIGHT', 'DONE')),
    response_status INTEGER,
    response_body   BLOB,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (customer_id, idempotency_key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_by_payment ON idempotency_keys (payment_id);

CREATE TABLE resale_listings (
    listing_id       BLOB PRIMARY KEY,
    event_id         BLOB NOT NULL,
    ticket_id        BLOB NOT NULL REFERENCES tickets,
    seller_id        TEXT NOT NULL,
    price_cents      INTEGER NOT NULL CHECK (price_cents >= 0),
    status           TEXT NOT NULL CHECK (status IN ('ACTIVE', 'HELD', 'SOLD', 'WITHDRAWN')),
    buyer_booking_id BLOB,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX resale_one_open_listing_per_ticket ON resale_listings (ticket_id) WHERE status IN ('ACTIVE', 'HELD');
CREATE INDEX resale_by_event ON resale_listings (event_id, status);

-- Change-data-capture. SQLite has one writer at a time, so positions become visible in
-- order and a reader can simply follow them.
CREATE TABLE outbox (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   BLOB NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
