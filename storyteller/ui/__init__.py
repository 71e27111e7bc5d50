"""The Gradio UI. Only this package imports gradio; one module per tab."""
