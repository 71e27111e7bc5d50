-- Foundation: app-wide settings (last loaded model, load settings, UI choices) as JSON values.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
