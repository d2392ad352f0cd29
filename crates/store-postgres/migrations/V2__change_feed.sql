-- Change feed. A random identity for this database, so that a reader's cursor (a transaction
-- snapshot) is never applied to another database or to this one after it was recreated; and
-- a wake-up for readers on every node: one NOTIFY per inserting statement, delivered when the
-- writing transaction commits (notifications of one transaction are merged by PostgreSQL).
CREATE TABLE feed_identity (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    store_id  uuid NOT NULL DEFAULT gen_random_uuid()
);
INSERT INTO feed_identity DEFAULT VALUES;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('boxoffice_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
