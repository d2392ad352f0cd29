-- The on-sale waiting room (issue 9).
-- An event's waiting-room policy, as JSON (opensAt, admitPerMinute, admissionMinutes); NULL for
-- events without one.
ALTER TABLE events ADD COLUMN waiting_room TEXT;

-- One buyer's place in one event's waiting room. Early joiners have random sort keys below
-- 2^62, later ones their arrival time past it.
CREATE TABLE queue_entries (
    queue_id     BLOB PRIMARY KEY,
    event_id     BLOB NOT NULL,
    customer_id  TEXT NOT NULL,
    sort_key     INTEGER NOT NULL,
    joined_at    INTEGER NOT NULL,
    admitted_at  INTEGER,
    UNIQUE (event_id, customer_id)
);
CREATE INDEX queue_waiting ON queue_entries (event_id, sort_key, queue_id) WHERE admitted_at IS NULL;
CREATE INDEX queue_admitted ON queue_entries (event_id, admitted_at) WHERE admitted_at IS NOT NULL;

-- The running count of admissions per room: what the rate has already let in.
CREATE TABLE waiting_rooms (
    event_id  BLOB PRIMARY KEY,
    admitted  INTEGER NOT NULL DEFAULT 0
);

-- Queued commits (issue 9): a payment the commit queue took may not have reached the provider
-- yet; reconciliation asks the provider with its key instead of giving it up.
ALTER TABLE payments ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
