-- Batches of durable writes already stored, by token: several horde processes sharing one
-- replicated state each hold the same batch, and exactly one of them stores it.
CREATE TABLE flushed_batches (
    token TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL
);
