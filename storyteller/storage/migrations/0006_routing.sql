-- Router captures (issue 7): which experts a mixture-of-experts model's router chose, layer by layer,
-- for every token the request behind a reply evaluated. One row per request (a continued reply has
-- several, in order); `capture` is encoded and decoded by storyteller/core/router.py.
CREATE TABLE message_routing (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    capture BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX message_routing_by_message ON message_routing (message_id, id);
