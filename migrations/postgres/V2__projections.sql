-- Persistent projections, PostgreSQL dialect: checkpoints and call detail records, in the same
-- database as the event log. Applied by the `projections` crate when it connects, under the same
-- advisory lock as the log's migrations (and by the log's refinery runner in builds that embed
-- this file); every statement is idempotent, so the two may run in either order.
--
-- * `projection_checkpoints`: the log position each persistent projection has applied. A
--   projection writes its rows and its checkpoint in one transaction, so after a crash both are
--   from the same position.
-- * `cdr`: one row per call leg (Asterisk's uniqueid) of a call (linkedid). Times come from the
--   events' `occurred_at` (the injected clock), never now(); `positions` are the log positions
--   the row was folded from. Column names follow Asterisk's CDR where one exists (`start`,
--   `answer` and `end` are `start_at`, `answer_at` and `end_at`: `end` is reserved in SQL).
-- * `cdr_open_calls`: the fold's state for calls that have not ended yet, so a restart from the
--   checkpoint finishes their legs' rows.

CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name     text   PRIMARY KEY,
    position bigint NOT NULL CHECK (position >= 0)
);

CREATE TABLE IF NOT EXISTS cdr (
    linkedid       uuid        NOT NULL,
    uniqueid       uuid        NOT NULL,
    sequence       integer     NOT NULL,
    tenant         text,
    direction      text        NOT NULL,
    leg_role       text        NOT NULL,
    src            text,
    src_name       text,
    clid           text        NOT NULL,
    src_user       text,
    src_department text,
    dst            text,
    dst_name       text,
    dst_user       text,
    dst_department text,
    dnid           text,
    channel        text        NOT NULL,
    dstchannel     text,
    user_id        text,
    department     text,
    trunk          text,
    start_at       timestamptz NOT NULL,
    answer_at      timestamptz,
    end_at         timestamptz NOT NULL,
    duration       bigint      NOT NULL,
    billsec        bigint      NOT NULL,
    duration_ms    bigint      NOT NULL,
    billable_ms    bigint      NOT NULL,
    disposition    text        NOT NULL,
    hangup_cause   text        NOT NULL,
    q850           integer,
    hangup_side    text        NOT NULL,
    sip_status     integer,
    positions      bigint[]    NOT NULL,
    end_position   bigint      NOT NULL,
    PRIMARY KEY (linkedid, uniqueid)
);

CREATE INDEX IF NOT EXISTS cdr_tenant_start ON cdr (tenant, start_at);
CREATE INDEX IF NOT EXISTS cdr_src_user ON cdr (tenant, src_user, start_at);
CREATE INDEX IF NOT EXISTS cdr_dst_user ON cdr (tenant, dst_user, start_at);

CREATE TABLE IF NOT EXISTS cdr_open_calls (
    call_id uuid  PRIMARY KEY,
    state   jsonb NOT NULL
);
