-- Who got a token for what, when. Never a token or a secret.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Unix milliseconds.
    at_ms       INTEGER NOT NULL,
    request_id  TEXT,
    caller      TEXT,
    route       TEXT    NOT NULL,
    account     TEXT,
    target_user TEXT,
    -- Meeting number or Video SDK session name.
    target      TEXT,
    outcome     TEXT    NOT NULL,
    status      INTEGER NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (at_ms);
CREATE INDEX audit_events_by_caller ON audit_events (caller, at_ms);
