"""Settings › General, its "Appearance" part: light or dark colours, or the system's choice (the default).

The choice is kept in the app's settings and applied in the browser on every page load and as soon as
it changes: Gradio draws dark mode under a `dark` class on the page's body.
"""

from __future__ import annotations

import gradio as gr

from storyteller.core.services import Services

THEME_CHOICES = [("System", "system"), ("Light", "light"), ("Dark", "dark")]

# Runs in the browser with the chosen theme and hands it on unchanged (to the Python handler, if any).
# The mode is kept on <html> so the app's own script can hold a forced mode when the system's changes.
APPLY_THEME_JS = """
(mode) => {
  const dark = mode === "dark" || (mode !== "light" && window.matchMedia("(prefers-color-scheme: dark)").matches);
  document.documentElement.dataset.theme = mode;
  document.body.classList.toggle("dark", dark);
  return mode;
}
"""


def build(services: Services, general: gr.Tab) -> None:
    """Adds the part to the General sub-tab (`general`) of the Settings tab."""
    settings = services.settings
    with general:
        gr.Markdown("### Appearance")
        theme = gr.Radio(THEME_CHOICES, value=settings.theme(), label="Theme", elem_id="theme-choice")

    # Every page load reads the saved choice (another window may have changed it), then applies it.
    gr.on(None, settings.theme, None, theme, show_progress="hidden").then(None, theme, None, js=APPLY_THEME_JS)
    theme.input(settings.set_theme, theme, None, js=APPLY_THEME_JS, show_progress="hidden")
