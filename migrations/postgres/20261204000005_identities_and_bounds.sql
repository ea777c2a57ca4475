-- A grant is found by its user's identity with ASCII case folded, stored in a column of its
-- own, so queries compare it as it is (no lower() at query time). translate() folds ASCII
-- only, whatever the database's locale.
ALTER TABLE user_grants ADD COLUMN user_key TEXT NOT NULL DEFAULT '';
UPDATE user_grants SET
    user_key = translate(zoom_user_id, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'),
    email = translate(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
CREATE INDEX user_grants_by_key ON user_grants (account, user_key);

-- Pending authorisations: the order they were made in, to keep each caller's newest few, and
-- an index for the housekeeping that deletes expired ones.
ALTER TABLE oauth_states ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX oauth_states_by_caller ON oauth_states (caller, created_ms);
CREATE INDEX oauth_states_by_expiry ON oauth_states (expires_at);

-- A key's own budget of Zoom calls a minute; NULL: rate_limit.upstream_per_minute.
ALTER TABLE api_clients ADD COLUMN upstream_per_minute BIGINT;
