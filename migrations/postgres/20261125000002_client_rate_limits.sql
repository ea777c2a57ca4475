-- A client's own rate limit; NULL: the configured default ([rate_limit]).
ALTER TABLE api_clients ADD COLUMN rate_limit_per_second BIGINT;
ALTER TABLE api_clients ADD COLUMN rate_limit_burst BIGINT;
