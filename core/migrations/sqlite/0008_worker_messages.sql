-- Messages to workers: to one worker (`worker_id`) or, from moderators, to all (NULL).
CREATE TABLE worker_messages (
    id TEXT PRIMARY KEY,
    worker_id TEXT,
    user_id BIGINT NOT NULL,
    message TEXT NOT NULL,
    origin TEXT,
    expiry_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX worker_messages_expiry ON worker_messages (expiry_ms);
