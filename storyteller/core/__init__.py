"""App logic without UI or llama.cpp: context, prompts, chats (later: cards, presets, templates)."""
