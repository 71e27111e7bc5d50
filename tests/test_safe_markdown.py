"""The sanitizer: every hostile payload, alone or mixed into Markdown, renders to HTML that keeps the DOM
rules (tests/support/hostile.py); harmless Markdown comes back as it was; outside images become links."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from storyteller.ui.safe_markdown import escape_markdown, safe_markdown
from tests.support.hostile import PAYLOADS, REMOTE, broken_rules

# A CommonMark renderer with raw HTML on, as Gradio's own (marked) renders chat text in the browser.
# Its own link check is off: the sanitizer must keep bad links out by itself.
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")
MARKDOWN.validateLink = lambda url: True
RENDER = MARKDOWN.render


def broken_anyhow(cleaned: str, remote_images: bool = False) -> list[str]:
    """The rules broken by the text as rendered Markdown, or read as HTML as it stands (the laxest reading of
    raw HTML any Markdown renderer could have)."""
    return broken_rules(RENDER(cleaned), remote_images) + broken_rules(cleaned, remote_images)


def test_the_dom_rules_catch_every_payload_as_written():
    """The rules must be able to fail: rendered unsanitized, every payload but the harmless ones breaks them."""
    harmless = {p for p in PAYLOADS if p.startswith(("&lt;", "`", "```"))}
    assert [payload for payload in PAYLOADS if payload not in harmless and not broken_rules(RENDER(payload))] == []


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_survives_rendering(payload):
    cleaned = safe_markdown(payload)
    assert broken_anyhow(cleaned) == [], cleaned
    assert safe_markdown(cleaned) == cleaned  # cleaning twice changes nothing


@given(st.lists(st.sampled_from(PAYLOADS + ["*a*", "> quote", "\n\n", "[x](", "](", "<", "!", "`", "<b>", "\\"]),
                max_size=8).map("".join))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_mixed_payloads_keep_the_rules(text):
    assert broken_anyhow(safe_markdown(text)) == []


@given(st.text(alphabet="<>!/=\"' abcimgsrcpt:[]()&#;\\`\n-", max_size=60))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_random_angle_bracket_soup_keeps_the_rules(text):
    assert broken_anyhow(safe_markdown(text)) == []


@pytest.mark.parametrize("text", [
    "*She smiles.* \"Hello, traveller.\" <3",
    "> a quote\n\n- a list\n- **bold** and _italic_\n\n1. one\n2. two",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "Visit [the docs](https://example.org/docs?a=1&b=2) or <https://example.org> or <ann@example.org>.",
    "<b>bold</b>, <i>italic</i>, <font color=\"red\">red</font>, <span>plain</span><br>",
    "<details><summary>Spoiler</summary>It was the butler.</details>",
    "Tom & Jerry, 3 < 4 > 2, a -> b, `code`",
    "![avatar](/gradio_api/file=media/abc.png) and ![dot](data:image/png;base64,iVBORw0KGgo=)",
    "```python\nprint('hi')\n```",
])
def test_harmless_markdown_comes_back_as_it_was(text):
    assert safe_markdown(text) == text


def test_an_outside_image_becomes_a_link_with_its_address():
    cleaned = safe_markdown(f"![tracking pixel]({REMOTE})")
    assert cleaned == f"[🖼 tracking pixel: {escape_markdown(REMOTE)}]({REMOTE})"
    rendered = RENDER(cleaned)
    assert "<img" not in rendered and f'href="{REMOTE}"' in rendered and REMOTE in rendered.split(">", 1)[1]
    html_img = RENDER(safe_markdown(f'<img src="{REMOTE}" alt="pixel">'))
    assert "<img" not in html_img and f'<a href="{REMOTE}">🖼 pixel: {REMOTE}</a>' in html_img


def test_outside_images_load_when_the_setting_allows_them():
    for text in (f"![pixel]({REMOTE})", f'<img src="{REMOTE}" alt="pixel">'):
        rendered = RENDER(safe_markdown(text, remote_images=True))
        assert f'src="{REMOTE}"' in rendered
        assert broken_anyhow(safe_markdown(text, remote_images=True), remote_images=True) == []
    # Never from another scheme, and never active content.
    assert "<img" not in RENDER(safe_markdown('<img src="ftp://x.example/a.png">', remote_images=True))
    assert "onerror" not in safe_markdown(f'<img src="{REMOTE}" onerror="x()">', remote_images=True)


def test_bad_links_lead_nowhere_and_keep_their_text():
    rendered = RENDER(safe_markdown("[click me](javascript:alert(1)) <a href='vbscript:x'>or me</a>"))
    assert 'href="#"' in rendered and "click me" in rendered and "or me" in rendered
    assert "javascript" not in rendered and "vbscript" not in rendered


def test_dropped_tags_leave_their_text_and_nothing_else():
    assert safe_markdown("<iframe src=x>hello</iframe> <thinking>hmm</thinking>") == "hello hmm"
    assert safe_markdown('<p onclick="x()" class="y" style="z">text</p>') == "<p>text</p>"


def test_escape_markdown_shows_a_name_exactly():
    name = "<img src=x onerror=alert(1)> *Ann* [x](javascript:y)"
    rendered = RENDER(escape_markdown(name))
    assert "<img" not in rendered and "<em>" not in rendered and "<a" not in rendered
    assert "*Ann*" in rendered
