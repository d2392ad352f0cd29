-- Outbox retention. Each change-feed reader (a search indexer) records the last outbox position
-- it has applied; the pruner deletes rows every live reader has applied (and that are old
-- enough) and keeps in feed_horizon the highest position it deleted: a reader whose cursor is
-- below it has lost changes and must rebuild.
CREATE TABLE feed_readers (
    reader_id  TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE feed_horizon (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    position  INTEGER NOT NULL
);
INSERT INTO feed_horizon (singleton, position) VALUES (1, 0);
