-- Sampling presets (issue 5): user presets, the default preset, presets bound to characters.
CREATE TABLE presets (
    name TEXT PRIMARY KEY
);
