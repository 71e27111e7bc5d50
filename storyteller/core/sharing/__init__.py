"""Sharing presets, character cards and lorebooks through Hugging Face Hub repos."""
