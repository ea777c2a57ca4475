-- Account installs beside users' own grants. An account grant (kind 'account') is one admin's
-- authorisation of the app for their whole Zoom account; its zoom_user_id is
-- 'account:{zoom_account_id}', which no Zoom user ID can be, and user lookups see kind 'user'
-- only. zoom_account_id is the Zoom account a grant's user belongs to (NULL for grants made
-- before it was kept).
ALTER TABLE user_grants ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
ALTER TABLE user_grants ADD COLUMN zoom_account_id TEXT;
-- Grant health (Unix seconds): when a token was last served from the grant, and when it was
-- last refreshed.
ALTER TABLE user_grants ADD COLUMN last_used_at INTEGER;
ALTER TABLE user_grants ADD COLUMN refreshed_at INTEGER;
CREATE INDEX user_grants_by_zoom_account ON user_grants (account, kind, zoom_account_id);
CREATE INDEX user_grants_by_expiry ON user_grants (access_expires_at);

-- What a pending authorisation installs: 'user' (the signed-in user's own grant) or 'account'.
ALTER TABLE oauth_states ADD COLUMN install TEXT NOT NULL DEFAULT 'user';
