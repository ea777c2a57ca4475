-- Users' own OAuth grants: one row per (account, Zoom user). Tokens are sealed (AES-256-GCM).
CREATE TABLE user_grants (
    account           TEXT    NOT NULL,
    zoom_user_id      TEXT    NOT NULL,
    -- Lower-cased, to find a grant by email.
    email             TEXT    NOT NULL,
    refresh_token     BYTEA   NOT NULL,
    access_token      BYTEA   NOT NULL,
    -- Unix seconds.
    access_expires_at BIGINT  NOT NULL,
    scopes            TEXT    NOT NULL,
    -- Bumped by every change: refreshes are a compare-and-swap on it.
    version           BIGINT  NOT NULL,
    -- While one process refreshes, others wait until then (Unix seconds); a crashed
    -- refresher's lease simply runs out.
    refreshing_until  BIGINT,
    -- Zoom refused the refresh token: the user must authorise again.
    needs_reauth      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    PRIMARY KEY (account, zoom_user_id)
);
CREATE INDEX user_grants_by_email ON user_grants (account, email);

-- Pending authorisations: `state` is stored only as SHA-256, single-use, short-lived.
CREATE TABLE oauth_states (
    state_hash  TEXT    PRIMARY KEY NOT NULL,
    account     TEXT    NOT NULL,
    caller      TEXT    NOT NULL,
    -- The Zoom user (email or ID) the grant is meant for, if known.
    user_hint   TEXT,
    expires_at  BIGINT  NOT NULL
);
