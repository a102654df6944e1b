-- Persistent projections (embedded SQLite backend): checkpoints and call detail records, in the
-- same file as the event log. Applied by the `projections` crate when it opens the file (and by
-- the log's refinery runner in builds that embed this file); every statement is idempotent, so
-- the two may run in either order.
--
-- * `projection_checkpoints`: the log position each persistent projection has applied. A
--   projection writes its rows and its checkpoint in one transaction, so after a crash both are
--   from the same position.
-- * `cdr`: one row per call leg (Asterisk's uniqueid) of a call (linkedid). Times are
--   microseconds since 1970-01-01T00:00:00Z from the events' `occurred_at` (the injected clock);
--   `positions` is a JSON array of the log positions the row was folded from.
-- * `cdr_open_calls`: the fold's state for calls that have not ended yet (JSON), so a restart
--   from the checkpoint finishes their legs' rows.

CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL CHECK (position >= 0)
);

CREATE TABLE IF NOT EXISTS cdr (
    linkedid       TEXT    NOT NULL,
    uniqueid       TEXT    NOT NULL,
    sequence       INTEGER NOT NULL,
    tenant         TEXT,
    direction      TEXT    NOT NULL,
    leg_role       TEXT    NOT NULL,
    src            TEXT,
    src_name       TEXT,
    clid           TEXT    NOT NULL,
    src_user       TEXT,
    src_department TEXT,
    dst            TEXT,
    dst_name       TEXT,
    dst_user       TEXT,
    dst_department TEXT,
    dnid           TEXT,
    channel        TEXT    NOT NULL,
    dstchannel     TEXT,
    user_id        TEXT,
    department     TEXT,
    trunk          TEXT,
    start_at       INTEGER NOT NULL,
    answer_at      INTEGER,
    end_at         INTEGER NOT NULL,
    duration       INTEGER NOT NULL,
    billsec        INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    billable_ms    INTEGER NOT NULL,
    disposition    TEXT    NOT NULL,
    hangup_cause   TEXT    NOT NULL,
    q850           INTEGER,
    hangup_side    TEXT    NOT NULL,
    sip_status     INTEGER,
    positions      TEXT    NOT NULL,
    end_position   INTEGER NOT NULL,
    PRIMARY KEY (linkedid, uniqueid)
);

CREATE INDEX IF NOT EXISTS cdr_tenant_start ON cdr (tenant, start_at);
CREATE INDEX IF NOT EXISTS cdr_src_user ON cdr (tenant, src_user, start_at);
CREATE INDEX IF NOT EXISTS cdr_dst_user ON cdr (tenant, dst_user, start_at);

CREATE TABLE IF NOT EXISTS cdr_open_calls (
    call_id TEXT PRIMARY KEY,
    state   TEXT NOT NULL
);
