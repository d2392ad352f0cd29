-- Keys every node of a cluster must agree on. A node records the *public* half of its
-- configured ticket-signing key the first time it starts; a node with another key refuses to
-- start, so tickets issued by one node verify on every other. Never a private key.
CREATE TABLE cluster_keys (
    purpose    text PRIMARY KEY,
    key_id     text NOT NULL,
    public_key text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Outbox retention. Each change-feed reader (a node's search indexer, one per data directory)
-- records how far it has applied the feed; the pruner deletes rows every live reader has
-- applied (and that are old enough), and keeps in feed_horizon a snapshot that contains every
-- transaction whose rows it deleted: a reader whose cursor does not contain it has lost
-- changes and must rebuild.
CREATE TABLE feed_readers (
    reader_id  text PRIMARY KEY,
    position   text NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE feed_horizon (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  text
);
INSERT INTO feed_horizon DEFAULT VALUES;
