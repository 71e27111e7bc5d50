-- Characters (issue 4): cards, their embedded files, standalone lorebooks, personas.
-- Cards and lorebooks keep their original JSON whole (unknown keys survive export); images and
-- assets are files under media/ named by content hash, referenced from here.

CREATE TABLE characters (
    id INTEGER PRIMARY KEY,
    card TEXT NOT NULL CHECK (json_valid(card)),  -- the card document, V2 or V3 shape
    name TEXT GENERATED ALWAYS AS (json_extract(card, '$.data.name')) VIRTUAL,
    avatar TEXT,                                  -- media file, or NULL for none
    source_file TEXT,                             -- the file name it was imported from
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

-- Files embedded in the card (PNG chunks, CHARX zip entries), by the URI the card uses.
CREATE TABLE character_assets (
    character_id INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    uri TEXT NOT NULL,
    file TEXT NOT NULL,
    PRIMARY KEY (character_id, uri)
);
CREATE INDEX character_assets_file ON character_assets(file);

CREATE TABLE lorebooks (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('card_book', 'lorebook_v3', 'world_info')),
    book TEXT NOT NULL CHECK (json_valid(book)),
    source_file TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

CREATE TABLE personas (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    avatar TEXT,
    is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    created_at REAL NOT NULL
);
-- At most one default persona.
CREATE UNIQUE INDEX personas_one_default ON personas(is_default) WHERE is_default = 1;
