-- boxoffice schema, version 1. Never edit a migration once it has landed: add a new one.
--
-- Every table that grows with sales carries event_id, so that the schema can be distributed
-- by event (Citus-style) when one primary is no longer enough.

CREATE TABLE venues (
    venue_id  uuid PRIMARY KEY,
    name      text NOT NULL,
    address   text NOT NULL,
    city      text NOT NULL,
    zip_code  text NOT NULL,
    country   text NOT NULL,
    lat       double precision NOT NULL,
    lon       double precision NOT NULL
);

CREATE TABLE customers (
    customer_id text PRIMARY KEY,
    created_at  timestamptz NOT NULL
);

CREATE TABLE events (
    event_id                 uuid PRIMARY KEY,
    organizer_id             text NOT NULL,
    venue_id                 uuid NOT NULL REFERENCES venues,
    name                     text NOT NULL,
    performers               jsonb NOT NULL,
    category                 text NOT NULL,
    description              text NOT NULL,
    starts_at                timestamptz NOT NULL,
    on_sale_at               timestamptz NOT NULL,
    currency                 text NOT NULL,
    max_tickets_per_customer integer NOT NULL CHECK (max_tickets_per_customer > 0),
    refund_window_hours      integer NOT NULL CHECK (refund_window_hours >= 0),
    resale_max_price_percent integer NOT NULL CHECK (resale_max_price_percent >= 0),
    -- false until the seat rows exist: bulk-imported catalogs lay seats out on first booking.
    seats_laid_out           boolean NOT NULL,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL
);
CREATE INDEX events_organizer ON events (organizer_id);

CREATE TABLE sections (
    event_id      uuid NOT NULL REFERENCES events ON DELETE CASCADE,
    section_no    smallint NOT NULL,
    name          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('SEATED', 'GA')),
    rows          integer,
    seats_per_row integer,
    capacity      integer NOT NULL CHECK (capacity > 0),
    price_cents   bigint NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (event_id, section_no)
);

-- One row per seat or general-admission place. A seat is held by at most one booking
-- (booking_id) and its state moves only along the arrows of the domain's seat state machine.
CREATE TABLE seats (
    event_id        uuid NOT NULL,
    seat_id         text NOT NULL,
    section_no      smallint NOT NULL,
    row_index       integer NOT NULL,
    row_label       text,
    number          integer NOT NULL,
    price_cents     bigint NOT NULL,
    state           text NOT NULL DEFAULT 'OPEN' CHECK (state IN ('OPEN', 'HOLD', 'PENDING', 'SOLD')),
    hold_expires_at timestamptz,
    booking_id      uuid,
    version         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, seat_id),
    CHECK ((state = 'OPEN') = (booking_id IS NULL)),
    CHECK (state NOT IN ('HOLD', 'PENDING') OR hold_expires_at IS NOT NULL)
);
-- Best-available scans walk a section front to back.
CREATE INDEX seats_by_position ON seats (event_id, section_no, row_index, number);
CREATE INDEX seats_by_booking ON seats (booking_id) WHERE booking_id IS NOT NULL;
CREATE INDEX seats_expiring ON seats (hold_expires_at) WHERE state = 'HOLD';

CREATE TABLE bookings (
    booking_id    uuid PRIMARY KEY,
    event_id      uuid NOT NULL REFERENCES events,
    customer_id   text NOT NULL,
    status        text NOT NULL CHECK (status IN ('HOLD', 'PENDING', 'CONFIRMED', 'CANCELLED', 'EXPIRED')),
    expires_at    timestamptz NOT NULL,
    total_cents   bigint NOT NULL CHECK (total_cents >= 0),
    currency      text NOT NULL,
    quantity      integer NOT NULL CHECK (quantity > 0),
    contact_email text,
    attendees     jsonb NOT NULL DEFAULT '[]',
    -- set when this booking buys a resale listing rather than seats on first sale
    listing_id    uuid,
    confirmed_at  timestamptz,
    cancelled_at  timestamptz,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       bigint NOT NULL DEFAULT 0
);
CREATE INDEX bookings_by_customer ON bookings (customer_id, created_at);
CREATE INDEX bookings_open_holds ON bookings (expires_at) WHERE status = 'HOLD';
CREATE INDEX bookings_pending ON bookings (updated_at) WHERE status = 'PENDING';

-- The seats a booking asked for, kept after the seats themselves have moved on.
CREATE TABLE booking_seats (
    booking_id  uuid NOT NULL REFERENCES bookings ON DELETE CASCADE,
    event_id    uuid NOT NULL,
    seat_id     text NOT NULL,
    price_cents bigint NOT NULL,
    PRIMARY KEY (booking_id, seat_id)
);

-- Tickets a customer holds or has on hold for an event: the maxTicketsPerCustomer counter.
-- Updating one row per (event, customer) serialises that customer's parallel requests only.
CREATE TABLE customer_event_tickets (
    event_id    uuid NOT NULL,
    customer_id text NOT NULL,
    tickets     integer NOT NULL CHECK (tickets >= 0),
    PRIMARY KEY (event_id, customer_id)
);

CREATE TABLE tickets (
    ticket_id     uuid PRIMARY KEY,
    event_id      uuid NOT NULL,
    booking_id    uuid NOT NULL REFERENCES bookings,
    seat_id       text NOT NULL,
    customer_id   text NOT NULL,
    status        text NOT NULL CHECK (status IN ('VALID', 'USED', 'VOID')),
    token         text NOT NULL,
    attendee_name text,
    issued_at     timestamptz NOT NULL,
    checked_in_at timestamptz,
    voided_at     timestamptz
);
-- The last line of defence against selling a seat twice.
CREATE UNIQUE INDEX tickets_one_live_per_seat ON tickets (event_id, seat_id) WHERE status <> 'VOID';
CREATE INDEX tickets_by_customer ON tickets (customer_id, issued_at);
CREATE INDEX tickets_by_booking ON tickets (booking_id);

CREATE TABLE payments (
    payment_id      uuid PRIMARY KEY,
    event_id        uuid NOT NULL,
    booking_id      uuid NOT NULL REFERENCES bookings,
    customer_id     text NOT NULL,
    provider        text NOT NULL,
    provider_ref    text,
    idempotency_key text NOT NULL UNIQUE,
    method          text NOT NULL,
    amount_cents    bigint NOT NULL CHECK (amount_cents >= 0),
    currency        text NOT NULL,
    status          text NOT NULL CHECK (status IN ('STARTED', 'AUTHORIZED', 'CAPTURED', 'DECLINED', 'FAILED', 'VOIDED', 'REFUND_PENDING', 'REFUNDED')),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX payments_by_booking ON payments (booking_id);
CREATE INDEX payments_unsettled ON payments (updated_at) WHERE status IN ('STARTED', 'AUTHORIZED', 'REFUND_PENDING');

-- Commit requests by (customer, Idempotency-Key): the fingerprint of the first request and,
-- once it finished, the exact response to replay.
CREATE TABLE idempotency_keys (
    customer_id     text NOT NULL,
    idempotency_key text NOT NULL,
    event_id        uuid NOT NULL,
    booking_id      uuid NOT NULL,
    payment_id      uuid NOT NULL,
    fingerprint     text NOT NULL,
    state           text NOT NULL CHECK (state IN ('IN_FLIGHT', 'DONE')),
    response_status smallint,
    response_body   bytea,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (customer_id, idempotency_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_by_payment ON idempotency_keys (payment_id);

CREATE TABLE resale_listings (
    listing_id        uuid PRIMARY KEY,
    event_id          uuid NOT NULL,
    ticket_id         uuid NOT NULL REFERENCES tickets,
    seller_id         text NOT NULL,
    price_cents       bigint NOT NULL CHECK (price_cents >= 0),
    status            text NOT NULL CHECK (status IN ('ACTIVE', 'HELD', 'SOLD', 'WITHDRAWN')),
    buyer_booking_id  uuid,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE UNIQUE INDEX resale_one_open_listing_per_ticket ON resale_listings (ticket_id) WHERE status IN ('ACTIVE', 'HELD');
CREATE INDEX resale_by_event ON resale_listings (event_id, status);

-- Change-data-capture. Written in the same transaction as the change it describes. tx_id
-- lets a reader consume exactly the transactions that have finished (everything below
-- pg_snapshot_xmin), which a sequence alone cannot promise: sequence values are handed out
-- before commit, so a later position can become visible before an earlier one.
CREATE TABLE outbox (
    position   bigserial PRIMARY KEY,
    tx_id      xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id   uuid NOT NULL,
    kind       text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_by_tx ON outbox (tx_id, position);
