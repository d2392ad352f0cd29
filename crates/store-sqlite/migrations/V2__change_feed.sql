-- Change feed: a random identity for this database, so that a reader's cursor (an outbox
-- position) is never applied to another database, or to this one after it was recreated.
CREATE TABLE feed_identity (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    store_id  TEXT NOT NULL
);
INSERT INTO feed_identity (singleton, store_id) VALUES (1, lower(hex(randomblob(16))));
