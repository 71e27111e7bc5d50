-- Group chats (issue 20): a named group of characters (and an optional narrator) speaking in one chat.
-- A message's speaker is kept in its meta ("speaker": member id, "speaker_name"), so swipes, branches and
-- imported files keep theirs even after the member leaves the group.
CREATE TABLE groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    strategy TEXT NOT NULL DEFAULT 'natural' CHECK (strategy IN ('natural', 'list', 'pooled', 'manual')),
    prompt_mode TEXT NOT NULL DEFAULT 'join' CHECK (prompt_mode IN ('join', 'swap')),
    allow_self_responses INTEGER NOT NULL DEFAULT 0,
    scenario TEXT NOT NULL DEFAULT '',   -- '' : each member's own scenario
    settings TEXT NOT NULL DEFAULT '{}', -- JSON: what SillyTavern's group file carried that is not modelled
    created_at REAL NOT NULL
);

CREATE TABLE group_members (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,           -- the fixed order of the cards in the prompt and of "list"
    kind TEXT NOT NULL DEFAULT 'character' CHECK (kind IN ('character', 'narrator', 'placeholder')),
    character_id INTEGER REFERENCES characters(id) ON DELETE SET NULL,
    name TEXT NOT NULL,                  -- the character's name when added; a placeholder's or narrator's own
    muted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX group_members_by_group ON group_members (group_id, position);

-- Which chats are a group's (a chat row itself stays as it is for one-character chats).
CREATE TABLE group_chats (
    chat_id TEXT PRIMARY KEY REFERENCES chats(id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE
);
CREATE INDEX group_chats_by_group ON group_chats (group_id);
