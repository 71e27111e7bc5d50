"""Storyteller: local storytelling and roleplay with GGUF models."""

__version__ = "0.1.0"
