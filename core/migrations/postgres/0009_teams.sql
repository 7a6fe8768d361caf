-- Teams: named groups of workers (a worker is in at most one). Their figures are their
-- members' (summed when read).
CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    info TEXT NOT NULL DEFAULT '',
    owner_id BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE team_workers (
    worker_id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL
);
CREATE INDEX team_workers_team ON team_workers (team_id);
