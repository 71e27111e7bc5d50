-- Sampling presets (issue 5). The user's presets; the bundled ones are files and never stored.
-- `settings` is a JSON object of the sampler keys that differ from llama.cpp's defaults, exactly
-- as a preset file of that schema_version holds them.
CREATE TABLE presets (
    name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT '',
    schema_version INTEGER NOT NULL,
    settings TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

-- The preset new chats use (one row at most). A name, as it may be a bundled preset.
CREATE TABLE default_preset (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    preset_name TEXT NOT NULL
);

-- The preset a character's chats use. character_id is the characters table's id as text; no
-- foreign key, so a preset binding never blocks a change to characters.
CREATE TABLE character_presets (
    character_id TEXT NOT NULL PRIMARY KEY,
    preset_name TEXT NOT NULL
);
