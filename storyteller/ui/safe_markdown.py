"""Markdown from strangers made inert before Gradio renders it: cards, chat files, model replies, names.

Gradio renders Markdown in the browser (raw HTML passes through) and the chat's editor shows the very text
it renders, so the text stays Markdown and stays as it was wherever it is harmless:
- raw HTML tags are rebuilt from an allowlist (formatting, tables, links, local images) with an allowlist
  of attributes (no on*, style, class, id); every other tag, comment or declaration is dropped, and any
  other `<` that could open a tag is written as `&lt;`;
- links (Markdown, autolinks, <a href>) go only to http(s), mailto or this app; others lead nowhere;
- images from outside are not loaded: a Markdown image becomes a link with its address, an <img> the
  same, unless `remote_images` (the setting "Load images from the internet in chats").
An HTML sanitizer (nh3, bleach) would escape Markdown itself (`>` quotes, `<3`, autolinks), so this works
on the Markdown text; the page policy (api/page_policy.py) blocks whatever slipped through.
"""

from __future__ import annotations

import html
import re

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "center", "cite", "code", "dd", "del", "details", "dfn", "div",
    "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol",
    "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "small", "span", "strike", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var", "wbr",
})
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"}, "font": {"color"}, "abbr": {"title"},
    "td": {"align", "colspan", "rowspan"}, "th": {"align", "colspan", "rowspan"}, "ol": {"start"}, "details": {"open"},
}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
REMOTE_SCHEMES = frozenset({"http", "https"})
LOCAL_IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif|webp|avif)[;,]", re.IGNORECASE)
NOWHERE = "#"

# CommonMark's raw HTML: an open or closing tag (quoted values may hold '>'), a comment, a declaration or a
# processing instruction; an autolink <scheme:…> or <address@host>; else any '<' that could start a tag.
_ATTRIBUTE = r"""\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?"""
_HTML = re.compile(
    r"(?P<comment><!--.*?(?:-->|$))"
    r"|(?P<autolink><(?P<uri>[a-zA-Z][a-zA-Z0-9+.\-]{1,31}:[^<>\s]*)>|<[\w.!#$%&'*+/=?^`{|}~\-]+@[\w\-.]+>)"
    rf"|(?P<tag><(?P<close>/)?(?P<name>[a-zA-Z][a-zA-Z0-9\-]*)(?P<attrs>(?:{_ATTRIBUTE})*)\s*/?>)"
    r"|(?P<other><[!?/a-zA-Z])",
    re.DOTALL,
)
_ATTRIBUTES = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
# A link's target, far enough for its scheme: it stops at brackets, parentheses and '!', so a target never
# swallows a link or image that begins inside it (those are checked in their own right).
_TARGET = r"<[^\n()\[\]!<>]*>?|[^\s()\[\]!<>]*"
_LINK_TARGET = re.compile(rf"(\]\(\s*)({_TARGET})")  # [text](target
_REFERENCE = re.compile(r"(\[[^\]\n]+\]:[ \t]*\n?[ \t]*)(<[^<>\n]*>|\S+)")  # [label]: target
_MARKDOWN_TARGETS = re.compile(
    rf"""(?P<image>!\[(?P<alt>(?:[^\[\]\\]|\\.|\[[^\[\]]*\])*)\]\(\s*(?P<src>{_TARGET})(?:\s+(?:"[^"]*"|'[^']*'))?\s*\))"""
    rf"|(?P<bang>!(?=\[))|(?P<open>\]\(\s*)(?P<target>{_TARGET})"
)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()<>!#|~])")


def safe_markdown(text: str, remote_images: bool = False) -> str:
    """`text` with nothing active left in it (see the module's docstring); harmless text comes back as it was."""
    # Until nothing changes: what is dropped must not join its neighbours into something new (`<<b>img …>`,
    # `!` + an image made a link). A round that changes anything drops characters or turns an image into a
    # link; clean text comes back as it was.
    while (cleaned := _clean_once(text, remote_images)) != text:
        text = cleaned
    return text


def _clean_once(text: str, remote_images: bool) -> str:
    text = _HTML.sub(lambda match: _clean_html(match, remote_images), text)
    text = _REFERENCE.sub(lambda m: m.group(1) + _allowed_target(m.group(2)), text)
    # Left to right: an inline image is taken whole (its target is the image's), a lone '!' before '[' is
    # some other image syntax (reference images, odd nesting) and goes, so that shows as a link.
    return _MARKDOWN_TARGETS.sub(lambda m: _clean_target(m, remote_images), text)


def _clean_target(match: re.Match, remote_images: bool) -> str:
    if match.group("image") is not None:
        alt, target = _fix_targets(match.group("alt")), match.group("src")
        if _image_allowed(target.strip("<>"), remote_images):
            return f"![{alt}" + match.group(0)[len(match.group("alt")) + 2:]
        return _image_as_link(alt, target)
    if match.group("bang") is not None:
        return "" if not remote_images else "!"
    return match.group("open") + _allowed_target(match.group("target"))


def _fix_targets(text: str) -> str:
    return _LINK_TARGET.sub(lambda m: m.group(1) + _allowed_target(m.group(2)), text)


def _allowed_target(target: str) -> str:
    return target if _link_allowed(target) else NOWHERE


def escape_markdown(text: str) -> str:
    """Plain text (a name, a file name) shown inside Markdown, exactly as it is."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _clean_html(match: re.Match, remote_images: bool) -> str:
    if match.group("comment") is not None:
        return ""
    if match.group("autolink") is not None:
        uri = match.group("uri")
        return match.group(0) if uri is None or _scheme(uri) in LINK_SCHEMES else ""
    if match.group("other") is not None:
        return "&lt;" + match.group(0)[1:]
    name = match.group("name").lower()
    if name not in ALLOWED_TAGS:
        return ""
    if match.group("close"):
        return f"</{name}>"
    attributes = _attributes(name, match.group("attrs"))
    if name == "img" and not _image_allowed(attributes.get("src", ""), remote_images):
        src = attributes.get("src", "")
        if not _link_allowed(src):
            return html.escape(attributes.get("alt", ""))
        return f'<a href="{html.escape(src)}">🖼 {html.escape(attributes.get("alt") or src)}: {html.escape(src)}</a>'
    if name == "a" and "href" in attributes and not _link_allowed(attributes["href"]):
        attributes["href"] = NOWHERE
    return f"<{name}" + "".join(f' {key}="{html.escape(value)}"' for key, value in attributes.items()) + ">"


def _attributes(tag: str, source: str) -> dict[str, str]:
    allowed = ALLOWED_ATTRIBUTES.get(tag, set())
    found = {}
    for match in _ATTRIBUTES.finditer(source):
        key = match.group(1).lower()
        if key in allowed and key not in found:
            found[key] = html.unescape(next((v for v in match.groups()[1:] if v is not None), ""))
    return found


def _image_as_link(alt: str, target: str) -> str:
    address = html.unescape(target.strip("<>"))
    shown = f"🖼 {alt}: {escape_markdown(address)}" if alt.strip() else f"🖼 {escape_markdown(address)}"
    return f"[{shown}]({target})" if _link_allowed(target) else shown


def _scheme(url: str) -> str | None:
    """The scheme as a browser reads it: entities and backslash escapes resolved, tabs, newlines and
    control characters dropped."""
    cleaned = re.sub(r"[\x00-\x20\x7f\\]", "", html.unescape(url)).lower().lstrip("<")
    match = _SCHEME.match(cleaned)
    return match.group(1) if match else None


def _is_remote(url: str) -> bool:
    """Whether the URL names another host: a scheme, or a protocol-relative //host (or /\\host)."""
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", html.unescape(url.strip("<>"))).replace("\\", "/")
    return _scheme(url) is not None or cleaned.startswith("//")


def _link_allowed(url: str) -> bool:
    scheme = _scheme(url)
    return scheme in LINK_SCHEMES if scheme is not None else True


def _image_allowed(src: str, remote_images: bool) -> bool:
    if LOCAL_IMAGE_DATA.match(html.unescape(src).strip()):
        return True
    if _is_remote(src):
        return remote_images and _scheme(src) in REMOTE_SCHEMES
    return True
