"""Hugging Face Hub access: catalog, listings, GGUF headers over HTTP, downloads, layout conversion, fit.

The only package that imports huggingface_hub.
"""
