-- Shared keys: keys an account hands out so others generate on its kudos. `kudos` is what the
-- key may still spend (-1: no limit), `utilized` what it spent; limits of -1 mean none.
CREATE TABLE shared_keys (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    name TEXT,
    kudos BIGINT NOT NULL,
    utilized BIGINT NOT NULL DEFAULT 0,
    expiry_ms BIGINT,
    created_ms BIGINT NOT NULL,
    max_image_pixels BIGINT NOT NULL DEFAULT -1,
    max_image_steps BIGINT NOT NULL DEFAULT -1,
    max_text_tokens BIGINT NOT NULL DEFAULT -1
);
CREATE INDEX shared_keys_user ON shared_keys (user_id);
