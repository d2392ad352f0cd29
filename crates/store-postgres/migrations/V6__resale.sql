-- Resale, transfers and payouts (issue 8).
--
-- A ticket can now be LISTED (for resale) or REISSUED (resold or transferred: a new ticket with a
-- new id and token replaces it). The never-used resale_listings table of V1 is replaced by
-- listings.
DROP TABLE resale_listings;

ALTER TABLE tickets DROP CONSTRAINT tickets_status_check;
ALTER TABLE tickets ADD CONSTRAINT tickets_status_check
    CHECK (status IN ('VALID', 'LISTED', 'USED', 'VOID', 'REISSUED'));
-- the ticket this one replaced (resale or transfer), and when this one was replaced
ALTER TABLE tickets ADD COLUMN replaces uuid;
ALTER TABLE tickets ADD COLUMN reissued_at timestamptz;
-- The last line of defence against selling a seat twice: one ticket that can enter per seat.
DROP INDEX tickets_one_live_per_seat;
CREATE UNIQUE INDEX tickets_one_live_per_seat ON tickets (event_id, seat_id)
    WHERE status IN ('VALID', 'LISTED', 'USED');
-- Offline scanners fetch the tickets of an event voided or reissued since a cursor.
CREATE INDEX tickets_revoked ON tickets (event_id, (coalesce(reissued_at, voided_at)))
    WHERE status IN ('VOID', 'REISSUED');

-- A ticket offered for resale. ACTIVE until a buyer holds it (RESERVED, with the buyer's
-- booking and the hold's expiry: a reservation past its expiry is ACTIVE again for every
-- purpose), then SOLD; or WITHDRAWN by the seller, or EXPIRED when the event starts.
CREATE TABLE listings (
    listing_id        uuid PRIMARY KEY,
    event_id          uuid NOT NULL,
    ticket_id         uuid NOT NULL,
    seat_id           text NOT NULL,
    section_no        smallint NOT NULL,
    seller_id         text NOT NULL,
    price_cents       bigint NOT NULL CHECK (price_cents >= 0),
    fee_cents         bigint NOT NULL CHECK (fee_cents >= 0 AND fee_cents <= price_cents),
    face_value_cents  bigint NOT NULL,
    currency          text NOT NULL,
    status            text NOT NULL CHECK (status IN ('ACTIVE', 'RESERVED', 'SOLD', 'WITHDRAWN', 'EXPIRED')),
    booking_id        uuid,
    reserved_until    timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CHECK ((status = 'RESERVED') = (booking_id IS NOT NULL AND reserved_until IS NOT NULL)
           OR status = 'SOLD')
);
CREATE UNIQUE INDEX listings_one_open_per_ticket ON listings (ticket_id)
    WHERE status IN ('ACTIVE', 'RESERVED');
CREATE INDEX listings_by_event ON listings (event_id, price_cents) WHERE status IN ('ACTIVE', 'RESERVED');
CREATE INDEX listings_by_seller ON listings (seller_id, created_at);
CREATE INDEX listings_by_booking ON listings (booking_id) WHERE booking_id IS NOT NULL;

-- What each resale earned its seller: SCHEDULED until paid out after the event, or CLAWED_BACK
-- when the event is cancelled before that.
CREATE TABLE payouts (
    payout_id    uuid PRIMARY KEY,
    event_id     uuid NOT NULL,
    listing_id   uuid NOT NULL UNIQUE,
    seller_id    text NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
    currency     text NOT NULL,
    status       text NOT NULL CHECK (status IN ('SCHEDULED', 'PAID', 'CLAWED_BACK')),
    available_at timestamptz NOT NULL,
    provider_ref text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX payouts_by_seller ON payouts (seller_id, created_at);
CREATE INDEX payouts_due ON payouts (available_at) WHERE status = 'SCHEDULED';

-- A ticket given away: the recipient accepts and gets a reissued ticket.
CREATE TABLE transfers (
    transfer_id   uuid PRIMARY KEY,
    event_id      uuid NOT NULL,
    ticket_id     uuid NOT NULL,
    from_customer text NOT NULL,
    to_customer   text NOT NULL,
    status        text NOT NULL CHECK (status IN ('PENDING', 'ACCEPTED', 'CANCELLED', 'EXPIRED')),
    new_ticket_id uuid,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX transfers_one_pending_per_ticket ON transfers (ticket_id) WHERE status = 'PENDING';
CREATE INDEX transfers_by_recipient ON transfers (to_customer, created_at);
CREATE INDEX transfers_pending_by_event ON transfers (event_id) WHERE status = 'PENDING';

-- An event cancelled by its organizer shows saleStatus CANCELLED.
ALTER TABLE events ADD COLUMN cancelled_at timestamptz;
CREATE INDEX events_cancelled ON events (cancelled_at) WHERE cancelled_at IS NOT NULL;
-- Cancelling an event walks its bookings.
CREATE INDEX bookings_by_event ON bookings (event_id);
