-- Durable state only: accounts, workers, the kudos ledger. Prompts and generations never live here.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    oauth_id TEXT NOT NULL UNIQUE,
    api_key_hash TEXT UNIQUE,
    created BIGINT NOT NULL,
    kudos BIGINT NOT NULL DEFAULT 0,
    kd_accumulated BIGINT NOT NULL DEFAULT 0,
    kd_gifted BIGINT NOT NULL DEFAULT 0,
    kd_received BIGINT NOT NULL DEFAULT 0,
    kd_admin BIGINT NOT NULL DEFAULT 0,
    kd_awarded BIGINT NOT NULL DEFAULT 0,
    usage_tokens BIGINT NOT NULL DEFAULT 0,
    requests_text BIGINT NOT NULL DEFAULT 0,
    contribution_tokens BIGINT NOT NULL DEFAULT 0,
    fulfilled_text BIGINT NOT NULL DEFAULT 0,
    moderator BIGINT NOT NULL DEFAULT 0,
    trusted BIGINT NOT NULL DEFAULT 0,
    flagged BIGINT NOT NULL DEFAULT 0,
    pseudonymous BIGINT NOT NULL DEFAULT 0,
    concurrency BIGINT NOT NULL DEFAULT 30,
    worker_invited BIGINT NOT NULL DEFAULT 0,
    public_workers BIGINT NOT NULL DEFAULT 0,
    contact TEXT,
    admin_comment TEXT
);
CREATE INDEX users_kudos ON users (kudos DESC);

INSERT INTO users (id, username, oauth_id, created) VALUES (0, 'Anonymous', 'anon', 0);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'text',
    info TEXT NOT NULL DEFAULT '',
    created BIGINT NOT NULL,
    last_check_in BIGINT NOT NULL DEFAULT 0,
    maintenance BIGINT NOT NULL DEFAULT 0,
    maintenance_msg TEXT,
    paused BIGINT NOT NULL DEFAULT 0,
    nsfw BIGINT NOT NULL DEFAULT 1,
    models TEXT NOT NULL DEFAULT '[]',
    max_length BIGINT NOT NULL DEFAULT 512,
    max_context_length BIGINT NOT NULL DEFAULT 2048,
    threads BIGINT NOT NULL DEFAULT 1,
    bridge_agent TEXT NOT NULL DEFAULT 'unknown:0:unknown',
    uptime_ms BIGINT NOT NULL DEFAULT 0,
    requests_fulfilled BIGINT NOT NULL DEFAULT 0,
    tokens_generated BIGINT NOT NULL DEFAULT 0,
    kudos_generated BIGINT NOT NULL DEFAULT 0,
    kudos_uptime BIGINT NOT NULL DEFAULT 0,
    uncompleted_jobs BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX workers_user ON workers (user_id);

-- Every kudos movement; balances can be recomputed from it.
CREATE TABLE kudos_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    from_account TEXT NOT NULL,
    to_account TEXT NOT NULL,
    amount BIGINT NOT NULL
);
CREATE INDEX kudos_ledger_from ON kudos_ledger (from_account);
CREATE INDEX kudos_ledger_to ON kudos_ledger (to_account);

CREATE TABLE system_accounts (
    name TEXT PRIMARY KEY,
    balance BIGINT NOT NULL DEFAULT 0
);
INSERT INTO system_accounts (name, balance) VALUES ('mint', 0), ('burn', 0);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
