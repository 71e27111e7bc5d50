"""Completions for other apps: request bodies of the llama.cpp server, OpenAI and KoboldCpp APIs as engine
requests, and the API requests the engine serves now (for the header)."""
