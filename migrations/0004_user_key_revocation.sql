-- A user's API key can be revoked: the row stays (and its data), the key stops working.
ALTER TABLE maas.users ADD COLUMN revoked_at timestamptz;
