"""Models: the model library (Hub, downloads, conversion, local registry), loading a model, plain completions."""
