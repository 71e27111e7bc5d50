"""App logic without UI or llama.cpp, in one sub-package per domain (cards, lore, prompting, presets,
models, routing, chat); `context` (the shared resources), `errors` and `settings_keys` are leaves every
one of them may use, and `services` builds the services for the front ends."""
