-- Keys of the last day's kudos transfers (`Idempotency-Key`, per sender): a repeated key gets the
-- first transfer's answer instead of a second transfer. Written with the transfer's posting.
CREATE TABLE transfer_keys (
    from_user BIGINT NOT NULL,
    idem_key TEXT NOT NULL,
    to_user BIGINT NOT NULL,
    transferred BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (from_user, idem_key)
);
CREATE INDEX transfer_keys_created ON transfer_keys (created_ms);
