"""Settings › General: "Load images from the internet in chats" (off by default).

Off, an image from another host in a message, card or imported chat shows as a link with its address
(a remote image is a tracking pixel: it tells a stranger when and from where the text was read). On, the
sanitizer keeps such images and the page policy (api/page_policy.py) lets the next page load them."""

from __future__ import annotations

import gradio as gr

from storyteller.core.services import Services

ON_LINE = "Images from the internet load in chats (reload the page for its policy to allow them)."
OFF_LINE = "Images from the internet show as links with their address."


def build(services: Services, general: gr.Tab) -> None:
    with general:
        gr.Markdown("### Privacy")
        allowed = gr.Checkbox(services.settings.remote_images(), label="Load images from the internet in chats",
                              elem_id="remote-images")
        line = gr.Markdown(ON_LINE if services.settings.remote_images() else OFF_LINE, elem_id="remote-images-status")

    def on_change(on: bool) -> str:
        services.settings.set_remote_images(bool(on))
        return ON_LINE if on else OFF_LINE

    allowed.input(on_change, allowed, line)
