-- Styles: prompt templates with the parameters and models a request using them gets
-- (`/styles/image`, `/styles/text`), their example images, and collections of styles.
-- Models and tags are JSON arrays of strings; params a JSON object.
CREATE TABLE styles (
    id TEXT PRIMARY KEY,
    style_type TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '',
    prompt TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    models TEXT NOT NULL DEFAULT '[]',
    tags TEXT NOT NULL DEFAULT '[]',
    public BIGINT NOT NULL DEFAULT 1,
    nsfw BIGINT NOT NULL DEFAULT 0,
    use_count BIGINT NOT NULL DEFAULT 0,
    sharedkey_id TEXT,
    created_ms BIGINT NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX styles_type_public ON styles (style_type, public);

CREATE TABLE style_examples (
    id TEXT PRIMARY KEY,
    style_id TEXT NOT NULL,
    url TEXT NOT NULL,
    is_primary BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);
CREATE INDEX style_examples_style ON style_examples (style_id);

CREATE TABLE style_collections (
    id TEXT PRIMARY KEY,
    style_type TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '',
    public BIGINT NOT NULL DEFAULT 1,
    use_count BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE style_collection_members (
    collection_id TEXT NOT NULL,
    style_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (collection_id, style_id)
);
CREATE INDEX style_collection_members_style ON style_collection_members (style_id);
