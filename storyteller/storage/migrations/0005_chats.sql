-- Chats and stories (issue 6). Messages form a tree: swipes are siblings under one parent, a
-- branch is another chat whose leaf is a message of the same tree. Nothing is copied for either.
CREATE TABLE chats (
    id TEXT PRIMARY KEY,
    tree_id TEXT NOT NULL,               -- chats branched from each other share their tree
    title TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'chat' CHECK (mode IN ('chat', 'story')),
    character_id INTEGER,                -- NULL: a plain narrator
    persona_id INTEGER,
    preset_name TEXT,                    -- bound preset; NULL: the character's, else the default
    template_id TEXT,                    -- NULL: chosen for the model
    leaf_id INTEGER,                     -- the current last message
    settings TEXT NOT NULL DEFAULT '{}', -- JSON: author's note, memory, depth, trim point
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX chats_by_character ON chats (character_id, updated_at);
CREATE INDEX chats_by_tree ON chats (tree_id);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_id TEXT NOT NULL,
    parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL,
    token_ids BLOB,                      -- the sampled ids of a generated reply (int32 array)
    status TEXT NOT NULL DEFAULT 'final' CHECK (status IN ('final', 'streaming')),
    created_at REAL NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'      -- JSON: stats, seed, swipe origin
);
CREATE INDEX messages_by_parent ON messages (parent_id, id);
CREATE INDEX messages_by_tree ON messages (tree_id);

-- Full-text search over what was written, kept in step by triggers.
CREATE VIRTUAL TABLE messages_fts USING fts5 (content, content='messages', content_rowid='id');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
