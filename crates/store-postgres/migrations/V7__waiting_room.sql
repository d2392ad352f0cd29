-- The on-sale waiting room (issue 9).
-- An event's waiting-room policy (opensAt, admitPerMinute, admissionMinutes); NULL for none.
ALTER TABLE events ADD COLUMN waiting_room jsonb;

-- One buyer's place in one event's waiting room. Early joiners have random sort keys below
-- 2^62, later ones their arrival time past it.
CREATE TABLE queue_entries (
    queue_id     uuid PRIMARY KEY,
    event_id     uuid NOT NULL,
    customer_id  text NOT NULL,
    sort_key     bigint NOT NULL,
    joined_at    timestamptz NOT NULL,
    admitted_at  timestamptz,
    UNIQUE (event_id, customer_id)
);
CREATE INDEX queue_waiting ON queue_entries (event_id, sort_key, queue_id) WHERE admitted_at IS NULL;
CREATE INDEX queue_admitted ON queue_entries (event_id, admitted_at) WHERE admitted_at IS NOT NULL;

-- The running count of admissions per room; its row is the room's lock for an admission round.
CREATE TABLE waiting_rooms (
    event_id  uuid PRIMARY KEY,
    admitted  bigint NOT NULL DEFAULT 0
);

-- Queued commits (issue 9): a payment the commit queue took may not have reached the provider
-- yet; reconciliation asks the provider with its key instead of giving it up.
ALTER TABLE payments ADD COLUMN queued boolean NOT NULL DEFAULT false;
