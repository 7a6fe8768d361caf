-- When an account was marked deleted (seconds since the epoch); NULL while it is not.
ALTER TABLE users ADD COLUMN deleted_secs BIGINT;
