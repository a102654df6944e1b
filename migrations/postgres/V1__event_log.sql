-- Ledgerline event log, PostgreSQL dialect (applied by refinery from events/src/log/postgres.rs).
--
-- Invariants:
-- * `position` is 1-based, gap-free and in commit order. It is allocated from the one-row
--   `event_head` counter while holding that row's lock until COMMIT, so appends are serialised:
--   a reader that has seen position N has also seen every position below N, and a rolled-back
--   append rolls the counter back too. (A bare `bigserial` would let readers skip late commits.)
-- * `version` is 1-based per stream; (stream_id, version) is unique.
-- * `occurred_at` comes from the application's injected clock (microseconds), never now().
-- * `payload` is `json`, not `jsonb`: `json` keeps the exact text the application wrote (jsonb
--   re-formats it), so the per-row CRC32 `checksum` (events::log::checksum, computed by the
--   application over the stream, version and every field of the record) can be verified on every
--   read without a canonicalisation step, and SQL reports can still use `payload->>'field'`.
-- * `schema_version` is a u16 in the application, so it is stored as `integer` (a `smallint`
--   cannot hold 32768..65535); `checksum` is a u32, stored as `bigint`.
-- * The table is append-only: a statement trigger refuses UPDATE, DELETE and TRUNCATE.

CREATE TABLE event_head (
    id       smallint PRIMARY KEY CHECK (id = 1),
    position bigint   NOT NULL CHECK (position >= 0)
) WITH (fillfactor = 20);

INSERT INTO event_head (id, position) VALUES (1, 0);

CREATE TABLE events (
    position       bigint      PRIMARY KEY CHECK (position > 0),
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    event_id       uuid        NOT NULL UNIQUE,
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version BETWEEN 0 AND 65535),
    occurred_at    timestamptz NOT NULL,
    tenant         text,
    causation_id   uuid,
    correlation_id uuid,
    payload        json        NOT NULL,
    checksum       bigint      NOT NULL CHECK (checksum BETWEEN 0 AND 4294967295),
    UNIQUE (stream_id, version)
);

CREATE FUNCTION ledgerline_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the Ledgerline event log is append-only (% refused on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION ledgerline_refuse_change();

-- One append, in one round trip. Returns rows of (kind, event_id, stream_id, version, position):
--   kind 0  appended: one row, version = the stream's new version, position = last position
--   kind 1  already stored (idempotency): the stored events from the first requested id on
--           that carry requested ids, in position order; the client decides whether the request
--           is a faithful retry (events::log::idempotent_outcome)
--   kind 2  another event carries one of the requested ids: one row naming it
--   kind 3  wrong expected version: one row, version = the stream's current version
--   kind 4  (p_expected = -1, any version) the caller computed versions and checksums for
--           p_assumed but the stream is at `version`: nothing written, call again
-- p_expected: -1 for any version, otherwise the version the stream must be at (0: no stream).
-- p_assumed: the current version the caller computed the checksums for (= p_expected unless -1).
-- Runs inside the caller's transaction: the head row lock is held until that transaction ends,
-- and the NOTIFY is delivered at its commit.
CREATE FUNCTION ledgerline_append(
    p_stream          text,
    p_expected        bigint,
    p_assumed         bigint,
    p_event_ids       uuid[],
    p_event_types     text[],
    p_schema_versions integer[],
    p_occurred_at     timestamptz[],
    p_tenants         text[],
    p_causation_ids   uuid[],
    p_correlation_ids uuid[],
    p_payloads        text[],
    p_checksums       bigint[]
) RETURNS TABLE (kind smallint, o_event_id uuid, o_stream_id text, o_version bigint, o_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_head    bigint;
    v_current bigint;
    v_first   bigint;
    v_n       bigint := cardinality(p_event_ids);
BEGIN
    IF v_n IS NULL OR v_n = 0 THEN
        RAISE EXCEPTION 'ledgerline_append: no events' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Serialise appends: this row lock is held until COMMIT or ROLLBACK. Every statement below
    -- runs with a fresh snapshot taken after the lock was granted, so it sees every append
    -- committed before ours.
    SELECT h.position INTO v_head FROM event_head h WHERE h.id = 1 FOR UPDATE;

    IF EXISTS (SELECT 1 FROM events e WHERE e.event_id = ANY (p_event_ids)) THEN
        SELECT e.position INTO v_first FROM events e WHERE e.event_id = p_event_ids[1];
        IF FOUND THEN
            RETURN QUERY
                SELECT 1::smallint, e.event_id, e.stream_id, e.version, e.position
                FROM events e
                WHERE e.position >= v_first AND e.position < v_first + v_n
                  AND e.event_id = ANY (p_event_ids)
                ORDER BY e.position;
        ELSE
            RETURN QUERY
                SELECT 2::smallint, e.event_id, e.stream_id, e.version, e.position
                FROM events e
                WHERE e.event_id = ANY (p_event_ids)
                ORDER BY e.position
                LIMIT 1;
        END IF;
        RETURN;
    END IF;

    SELECT coalesce(max(e.version), 0) INTO v_current FROM events e WHERE e.stream_id = p_stream;
    IF v_current <> p_assumed THEN
        RETURN QUERY SELECT (CASE WHEN p_expected < 0 THEN 4 ELSE 3 END)::smallint,
                            NULL::uuid, NULL::text, v_current, NULL::bigint;
        RETURN;
    END IF;

    INSERT INTO events (position, stream_id, version, event_id, event_type, schema_version,
                        occurred_at, tenant, causation_id, correlation_id, payload, checksum)
    SELECT v_head + u.ord, p_stream, v_current + u.ord, u.event_id, u.event_type,
           u.schema_version, u.occurred_at, u.tenant, u.causation_id, u.correlation_id,
           u.payload::json, u.checksum
    FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_occurred_at, p_tenants,
                p_causation_ids, p_correlation_ids, p_payloads, p_checksums)
         WITH ORDINALITY AS u(event_id, event_type, schema_version, occurred_at, tenant,
                              causation_id, correlation_id, payload, checksum, ord);

    UPDATE event_head h SET position = v_head + v_n WHERE h.id = 1;
    PERFORM pg_notify('ledgerline_events', (v_head + v_n)::text);

    RETURN QUERY SELECT 0::smallint, NULL::uuid, NULL::text, v_current + v_n, v_head + v_n;
END
$$;
