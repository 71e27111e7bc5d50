-- Model library (issue 3): GGUF files downloaded from the Hub or added by path (never copied).
CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,              -- the file llama.cpp opens (a split GGUF's first part)
    name TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('download', 'added')),
    repo_id TEXT,                           -- where a download came from
    revision TEXT,
    quant TEXT,
    catalog_id TEXT,                        -- the catalog entry it belongs to, for its settings
    part_paths TEXT NOT NULL DEFAULT '[]',  -- JSON: every file of the model (split parts), for deletion
    size_bytes INTEGER NOT NULL,
    header TEXT NOT NULL,                   -- JSON: what the GGUF header says (architecture, experts…)
    added_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
