-- Finished generations per kind (image, text), model and hour since the epoch: counts only.
CREATE TABLE generation_stats (
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    hour BIGINT NOT NULL,
    jobs BIGINT NOT NULL,
    things BIGINT NOT NULL,
    PRIMARY KEY (kind, model, hour)
);
