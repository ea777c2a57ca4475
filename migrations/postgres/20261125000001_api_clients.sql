-- API clients: callers that present a `ztv_…` key. Only the key's SHA-256 is stored.
-- The same schema as migrations/sqlite, in PostgreSQL's types.
CREATE TABLE api_clients (
    name        TEXT    PRIMARY KEY NOT NULL,
    -- The first 12 characters of the key ("ztv_" + 8): an index to find the row, and a way
    -- for operators to tell keys apart. Not enough to use the key.
    key_prefix  TEXT    NOT NULL UNIQUE,
    -- Hex SHA-256 of the whole key.
    key_hash    TEXT    NOT NULL,
    -- Space-separated scopes.
    scopes      TEXT    NOT NULL,
    -- NULL: the client may name any configured account.
    account     TEXT,
    -- Unix seconds.
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    updated_at  BIGINT  NOT NULL
);
