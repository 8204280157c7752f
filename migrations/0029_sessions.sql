-- Web UI sessions: the login form exchanges an API key for a random session token (the cookie),
-- stored here only as its sha256. The cookie used to be the raw key itself, which logout could
-- not revoke. A session authenticates as the key that opened it (key_hash), so revoking that key
-- or changing the admin key ends it at once; logout deletes it; erasure cascades.
CREATE TABLE maas.sessions (
  token_hash text PRIMARY KEY,                 -- sha256 hex of the session token
  user_id uuid REFERENCES maas.users (id) ON DELETE CASCADE,  -- NULL: the admin key
  key_hash text NOT NULL,                      -- sha256 hex of the key that logged in
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON maas.sessions (user_id);
CREATE INDEX sessions_expiry_idx ON maas.sessions (expires_at);
