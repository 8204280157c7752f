-- Web UI sessions (migration 0029): a random token in the cookie, its sha256 here.

-- name: open_session
-- $1 sha256 of the new token, $2 user (NULL: the admin key), $3 sha256 of the key that logged
-- in, $4 lifetime in seconds. Sessions expired meanwhile are swept here, so none lingers.
WITH expired AS (DELETE FROM maas.sessions WHERE expires_at < now())
INSERT INTO maas.sessions (token_hash, user_id, key_hash, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))

-- name: session_key_hash
-- $1 sha256 of a presented session token: the key hash it authenticates as, while unexpired.
-- The key itself is checked by the caller (a revoked user key or a changed admin key finds no one).
SELECT key_hash FROM maas.sessions WHERE token_hash = $1 AND expires_at > now()

-- name: close_session
-- $1 sha256 of the session token (logout).
DELETE FROM maas.sessions WHERE token_hash = $1

-- name: export_sessions
-- $1 user: when each of its sessions was opened and expires (never the token's hash).
SELECT jsonb_build_object('created_at', s.created_at, 'expires_at', s.expires_at)::text
FROM maas.sessions s WHERE s.user_id = $1 ORDER BY s.created_at
