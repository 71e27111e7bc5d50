-- Story-so-far summaries (issue 19): each chat branch keeps the summaries the model (or the user) wrote,
-- newest last; each covers its chat's history up to and including `covers_to`. The chat's settings say
-- which one its prompt holds now (`summary_active`), which changes only at a trim.
CREATE TABLE chat_summaries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    covers_to INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    covered_messages INTEGER NOT NULL,   -- how many history messages it covers
    author TEXT NOT NULL CHECK (author IN ('model', 'user')),
    created_at REAL NOT NULL
);
CREATE INDEX chat_summaries_by_chat ON chat_summaries (chat_id, id);
