-- The (caller, at_ms) index served no query: `ztv audit` filters by caller with
-- `(CAST(? AS TEXT) IS NULL OR caller = ?)`, which SQLite answers from the time index
-- (EXPLAIN QUERY PLAN), and every audit event paid for keeping it: about 3 300 of a
-- signature's 124 500 instructions (`bash bench/callgrind.sh`), in the audit writer.
-- PostgreSQL keeps its copy: it plans each `ztv audit` run with the caller's value in hand.
DROP INDEX IF EXISTS audit_events_by_caller;
