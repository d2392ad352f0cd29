-- Resale, transfers and payouts (issue 8).
--
-- A ticket can now be LISTED (for resale) or REISSUED (resold or transferred: a new ticket with a
-- new id and token replaces it). SQLite cannot change a CHECK constraint in place, so the tickets
-- table is rebuilt; the never-used resale_listings table of V1 goes with it, replaced by listings.
DROP TABLE resale_listings;

CREATE TABLE tickets_v6 (
    ticket_id     BLOB PRIMARY KEY,
    event_id      BLOB NOT NULL,
    booking_id    BLOB NOT NULL REFERENCES bookings,
    seat_id       TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('VALID', 'LISTED', 'USED', 'VOID', 'REISSUED')),
    token         TEXT NOT NULL,
    attendee_name TEXT,
    issued_at     INTEGER NOT NULL,
    checked_in_at INTEGER,
    voided_at     INTEGER,
    -- the ticket this one replaced (resale or transfer), and when this one was replaced
    replaces      BLOB,
    reissued_at   INTEGER
) WITHOUT ROWID;
INSERT INTO tickets_v6 (ticket_id, event_id, booking_id, seat_id, customer_id, status, token,
        attendee_name, issued_at, checked_in_at, voided_at)
    SELECT ticket_id, event_id, booking_id, seat_id, customer_id, status, token, attendee_name,
        issued_at, checked_in_at, voided_at
    FROM tickets;
DROP TABLE tickets;
ALTER TABLE tickets_v6 RENAME TO tickets;
-- The last line of defence against selling a seat twice: one ticket that can enter per seat.
CREATE UNIQUE INDEX tickets_one_live_per_seat ON tickets (event_id, seat_id)
    WHERE status IN ('VALID', 'LISTED', 'USED');
CREATE INDEX tickets_by_customer ON tickets (customer_id, issued_at);
CREATE INDEX tickets_by_booking ON tickets (booking_id);
-- Offline scanners fetch the tickets of an event voided or reissued since a cursor.
CREATE INDEX tickets_revoked ON tickets (event_id, coalesce(reissued_at, voided_at))
    WHERE status IN ('VOID', 'REISSUED');

-- A ticket offered for resale. ACTIVE until a buyer holds it (RESERVED, with the buyer's
-- booking and the hold's expiry: a reservation past its expiry is ACTIVE again for every
-- purpose), then SOLD; or WITHDRAWN by the seller, or EXPIRED when the event starts.
CREATE TABLE listings (
    listing_id        BLOB PRIMARY KEY,
    event_id          BLOB NOT NULL,
    ticket_id         BLOB NOT NULL,
    seat_id           TEXT NOT NULL,
    section_no        INTEGER NOT NULL,
    seller_id         TEXT NOT NULL,
    price_cents       INTEGER NOT NULL CHECK (price_cents >= 0),
    fee_cents         INTEGER NOT NULL CHECK (fee_cents >= 0 AND fee_cents <= price_cents),
    face_value_cents  INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('ACTIVE', 'RESERVED', 'SOLD', 'WITHDRAWN', 'EXPIRED')),
    booking_id        BLOB,
    reserved_until    INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    CHECK ((status = 'RESERVED') = (booking_id IS NOT NULL AND reserved_until IS NOT NULL)
           OR status = 'SOLD')
) WITHOUT ROWID;
CREATE UNIQUE INDEX listings_one_open_per_ticket ON listings (ticket_id)
    WHERE status IN ('ACTIVE', 'RESERVED');
CREATE INDEX listings_by_event ON listings (event_id, price_cents) WHERE status IN ('ACTIVE', 'RESERVED');
CREATE INDEX listings_by_seller ON listings (seller_id, created_at);
CREATE INDEX listings_by_booking ON listings (booking_id) WHERE booking_id IS NOT NULL;

-- What each resale earned its seller: SCHEDULED until paid out after the event, or CLAWED_BACK
-- when the event is cancelled before that.
CREATE TABLE payouts (
    payout_id    BLOB PRIMARY KEY,
    event_id     BLOB NOT NULL,
    listing_id   BLOB NOT NULL UNIQUE,
    seller_id    TEXT NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('SCHEDULED', 'PAID', 'CLAWED_BACK')),
    available_at INTEGER NOT NULL,
    provider_ref TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX payouts_by_seller ON payouts (seller_id, created_at);
CREATE INDEX payouts_due ON payouts (available_at) WHERE status = 'SCHEDULED';

-- A ticket given away: the recipient accepts and gets a reissued ticket.
CREATE TABLE transfers (
    transfer_id   BLOB PRIMARY KEY,
    event_id      BLOB NOT NULL,
    ticket_id     BLOB NOT NULL,
    from_customer TEXT NOT NULL,
    to_customer   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('PENDING', 'ACCEPTED', 'CANCELLED', 'EXPIRED')),
    new_ticket_id BLOB,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX transfers_one_pending_per_ticket ON transfers (ticket_id) WHERE status = 'PENDING';
CREATE INDEX transfers_by_recipient ON transfers (to_customer, created_at);
CREATE INDEX transfers_pending_by_event ON transfers (event_id) WHERE status = 'PENDING';

-- An event cancelled by its organizer shows saleStatus CANCELLED.
ALTER TABLE events ADD COLUMN cancelled_at INTEGER;
CREATE INDEX events_cancelled ON events (cancelled_at) WHERE cancelled_at IS NOT NULL;
-- Cancelling an event walks its bookings.
CREATE INDEX bookings_by_event ON bookings (event_id);
