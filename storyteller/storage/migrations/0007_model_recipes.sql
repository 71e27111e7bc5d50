-- Merge recipes (issue 21): the mergekit-moe config a frankenMoE was built from, as its repo holds it, kept
-- with the library's model when it is downloaded. `text` is the YAML as read (NULL when none was found);
-- `note` says where it came from, why there is none, or why it does not parse.
CREATE TABLE model_recipes (
    model_id INTEGER PRIMARY KEY REFERENCES models(id) ON DELETE CASCADE,
    repo_id TEXT,
    file TEXT,
    text TEXT,
    note TEXT NOT NULL,
    fetched_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
