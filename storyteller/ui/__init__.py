"""The Gradio UI. Only this package imports gradio; one module per tab.

Importing this package first makes gradio's import skip its stub writer (`gradio_import.py`).
"""

from storyteller.ui.gradio_import import skip_stub_generation

skip_stub_generation()
