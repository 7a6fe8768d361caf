-- Image counters per user (megapixelsteps are kept as whole pixelsteps / 1000, "kilopixelsteps").
ALTER TABLE users ADD COLUMN usage_kps BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN requests_image BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN contribution_kps BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN fulfilled_image BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN kps_generated BIGINT NOT NULL DEFAULT 0;

-- Per-image generation times, normalized to a reference worker, for refitting the kudos model.
-- Only the payload's shape is kept: no prompt, no image, no user, no worker.
CREATE TABLE image_timings (
    created_ms BIGINT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    steps BIGINT NOT NULL,
    sampler TEXT NOT NULL,
    cfg_scale DOUBLE PRECISION NOT NULL,
    denoising_strength DOUBLE PRECISION NOT NULL,
    karras BIGINT NOT NULL,
    hires_fix BIGINT NOT NULL,
    source_processing TEXT NOT NULL,
    control_type TEXT NOT NULL,
    post_processing TEXT NOT NULL,
    loras BIGINT NOT NULL,
    tis BIGINT NOT NULL,
    seconds DOUBLE PRECISION NOT NULL
);
