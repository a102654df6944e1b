-- The append-only event log (embedded SQLite backend). Positions are assigned by the single
-- writer inside its IMMEDIATE transaction, so they are gap-free and in commit order.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    occurred_at    INTEGER NOT NULL, -- microseconds since 1970-01-01T00:00:00Z, from the injected clock
    tenant         TEXT,
    causation_id   BLOB,
    correlation_id BLOB,
    payload        TEXT    NOT NULL, -- JSON object, exact bytes as appended
    checksum       INTEGER NOT NULL, -- crc32 over the row, verified on every read
    UNIQUE (stream_id, version)
);
