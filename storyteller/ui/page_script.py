"""A script the page runs before Gradio's own, put first in the <head> of the page served at /.

Gradio 6.31's status tracker counts a pending event's seconds in a requestAnimationFrame loop that
stops only when the event's status changes; a tracker that goes away while its event is pending
(the loading screen's does, every time) keeps its loop running for as long as the page is open. Each
loop makes the browser draw 60 frames a second: on the idle Chat tab two of them cost headless Chromium
~0.16 of a core (bench/browser_streaming.py). The tracker takes its requestAnimationFrame when its
module loads, before any `js=` or `head=` of Gradio's runs, hence a script in the HTML itself.

The script lets a tracker's first frame through as it is and gives the frames its loop asks for from
there on twice a second instead: a visible elapsed-time counter still moves, a leaked one costs next
to nothing. Other requestAnimationFrame callers are untouched.
"""

from __future__ import annotations

TRACKER_FRAMES_SCRIPT = """<script>
(() => {
  const frame = window.requestAnimationFrame.bind(window);
  let inTrackerFrame = false;
  const fromTracker = () => /\\/statustracker-[^/]*\\.js/.test((new Error().stack || "").split("\\n")[3] || "");
  window.requestAnimationFrame = (callback) => {
    if (!fromTracker()) return frame(callback);
    const run = (time) => {
      inTrackerFrame = true;
      try { callback(time); } finally { inTrackerFrame = false; }
    };
    return inTrackerFrame ? setTimeout(() => run(performance.now()), 500) : frame(run);
  };
})();
</script>"""


class HeadScript:
    """ASGI middleware: `script` goes first into the <head> of the HTML page served at `path`."""

    def __init__(self, app, script: str = TRACKER_FRAMES_SCRIPT, path: str = "/"):
        self.app = app
        self.tag = script.encode()
        self.path = path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        body: list[bytes] = []

        async def send_with_script(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            content = b"".join(body)
            headers = dict(start["headers"])
            if headers.get(b"content-type", b"").startswith(b"text/html") and b"content-encoding" not in headers:
                content = content.replace(b"<head>", b"<head>" + self.tag, 1)
            kept = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*kept, (b"content-length", str(len(content)).encode())]})
            await send({"type": "http.response.body", "body": content})

        await self.app(scope, receive, send_with_script)
