"""The HTTP API other apps use (SillyTavern, Open WebUI, scripts): llama.cpp server, OpenAI and KoboldCpp
endpoints on the app's own port, over `core` through `Services` (FastAPI; no gradio here)."""
