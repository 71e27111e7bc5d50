"""Hub sharing. The Presets tab's "Share on the Hub" (presets, cards and lorebooks into a repo, one commit) and
"Get from the Hub" (a repo's items previewed, then the chosen ones installed), with a search by tag; and the
smaller "Share on the Hub" box the Cards and Lorebooks tabs have for the card or lorebook they show.

The offer being looked at is kept in the browser session's state, so Install writes exactly what was
previewed (the same commit), whatever the repo got meanwhile.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.events import Dependency

from storyteller.core.cards.card_files import CardPackage
from storyteller.core.services import Services
from storyteller.core.sharing.install import Offer
from storyteller.ui.safe_markdown import escape_markdown
from storyteller.ui.widgets.downloads import LIBRARY_ERRORS

STATUS_WORDS = {"new": "new", "changed": "changed", "unchanged": "unchanged", "refused": "**refused**"}
ABOUT_PUBLISHING = ("Writes into a Hugging Face repo (a dataset repo, made if missing) in one commit, with a README "
                    "and an index. Needs an HF token with write access (Settings).")


@dataclass(frozen=True)
class PublishForm:
    """The repo, private and commit-message boxes, the Publish button and the line saying what happened."""

    repo: gr.Textbox
    private: gr.Checkbox
    message: gr.Textbox
    button: gr.Button
    published: gr.Markdown


def repo_box(prefix: str) -> gr.Textbox:
    return gr.Textbox(label="Repo", placeholder="your-name/my-shelf", scale=2, elem_id=f"{prefix}-repo")


def publish_form(prefix: str, repo: gr.Textbox) -> PublishForm:
    """The private and commit-message boxes and the Publish button in a row, then the outcome line; elem_ids
    start with `prefix`."""
    with gr.Row():
        private = gr.Checkbox(label="Private (a new repo)", elem_id=f"{prefix}-private")
        message = gr.Textbox(label="Commit message (optional)", scale=3, elem_id=f"{prefix}-message")
        button = gr.Button("Publish", variant="primary", elem_id=f"{prefix}-publish-button")
    return PublishForm(repo, private, message, button, gr.Markdown(elem_id=f"{prefix}-published"))


def publish(services: Services, repo: str, *, is_private: bool, message: str, **chosen) -> tuple[str, str | None]:
    """Publishes the `chosen` items (Sharing.publish's presets/cards/lorebooks/models): the line saying where to
    (or why not), and the README the repo got (None when nothing was published)."""
    try:
        report = services.sharing.publish(repo, private=is_private, message=message or None, **chosen)
    except LIBRARY_ERRORS as exc:
        gr.Warning(str(exc))
        return f"Not published: {escape_markdown(str(exc))}", None
    notes = "".join(f"\n- {escape_markdown(note)}" for note in report.notes)
    return (f"Published to [{report.repo}]({report.url}) (commit `{report.commit[:12]}`): "
            f"{', '.join(f'`{f}`' for f in report.files)}.{notes}", report.readme)


def build_publish_one(services: Services, kind: str, selected: gr.components.Component) -> None:
    """A small "Share on the Hub" box publishing the card or lorebook (`kind`) whose id `selected` holds."""
    with gr.Accordion("Share on the Hub", open=False, elem_id=f"{kind}-share"):
        gr.Markdown(f"Publishes this {kind}. {ABOUT_PUBLISHING}")
        form = publish_form(f"{kind}-share", repo_box(f"{kind}-share"))

    def on_publish(item_id, repo_text, is_private, message_text):
        if item_id is None:
            return f"Choose a {kind} first."
        return publish(services, repo_text, is_private=is_private, message=message_text, **{f"{kind}s": [str(item_id)]})[0]

    form.button.click(on_publish, [selected, form.repo, form.private, form.message], form.published)


def build(services: Services) -> Dependency:
    """The two sections, under the preset editor; the caller is inside the Presets tab. The install event is
    returned so the caller can show the new presets."""
    sharing = services.sharing
    with gr.Accordion("Share on the Hub", open=False, elem_id="share-publish") as publish_box:
        gr.Markdown(f"Presets, characters and lorebooks. {ABOUT_PUBLISHING}")
        with gr.Row():
            repo = repo_box("share")
            models = gr.Textbox(label="Made for models (optional)", placeholder="owner/model-GGUF, …", elem_id="share-models")
        with gr.Row():
            presets = gr.Dropdown(label="Presets", multiselect=True, elem_id="share-presets")
            cards = gr.Dropdown(label="Characters", multiselect=True, elem_id="share-cards")
            books = gr.Dropdown(label="Lorebooks", multiselect=True, elem_id="share-lorebooks")
        form = publish_form("share", repo)
        with gr.Accordion("The README the repo got", open=False, visible=False) as readme_box:
            readme = gr.Code(language="markdown", interactive=False, elem_id="share-readme")

    with gr.Accordion("Get from the Hub", open=False, elem_id="share-get"):
        with gr.Row():
            source = gr.Textbox(label="Repo or URL", placeholder="owner/name, datasets/owner/name or a Hub link",
                                scale=3, elem_id="share-source")
            revision = gr.Textbox(label="Revision (optional)", placeholder="main", elem_id="share-revision")
            look_btn = gr.Button("Look", variant="primary", elem_id="share-look")
        offered = gr.Markdown(elem_id="share-offer")
        avatars = gr.Gallery(label="Characters", visible=False, height=180, columns=8, object_fit="contain",
                             allow_preview=False, fit_columns=False, interactive=False, elem_id="share-avatars")
        choose = gr.CheckboxGroup(label="Install", visible=False, elem_id="share-choose")
        install_btn = gr.Button("Install", variant="primary", visible=False, elem_id="share-install")
        installed = gr.Markdown(elem_id="share-installed")
        with gr.Row():
            search_text = gr.Textbox(label="Find shared repos", placeholder="words in the repo's name (optional)",
                                     scale=3, elem_id="share-search-text")
            search_btn = gr.Button("Search the Hub", elem_id="share-search")
        found = gr.Markdown(elem_id="share-found")
    offer_state = gr.State(None)

    def choices():
        return {
            presets: gr.update(choices=services.presets.names()),
            cards: gr.update(choices=[(f"{c.name} (#{c.id})", str(c.id)) for c in services.characters.all()]),
            books: gr.update(choices=[(f"{b.name} (#{b.id})", str(b.id)) for b in services.lorebooks.all()]),
        }

    def on_publish(repo_text, preset_names, card_ids, book_ids, models_text, is_private, message_text):
        line, got = publish(services, repo_text, is_private=is_private, message=message_text, presets=preset_names or [],
                            cards=card_ids or [], lorebooks=book_ids or [], models=(models_text or "").split(","))
        if got is None:
            return {form.published: line, readme_box: gr.update(visible=False)}
        return {form.published: line, readme_box: gr.update(visible=True, open=True), readme: got}

    def on_look(source_text, revision_text):
        try:
            offer = sharing.offer(source_text, (revision_text or "").strip() or None)
        except LIBRARY_ERRORS as exc:
            gr.Warning(str(exc))
            return {offer_state: None, offered: f"Cannot read that repo: {escape_markdown(str(exc))}", avatars: gr.update(visible=False),
                    choose: gr.update(visible=False), install_btn: gr.update(visible=False), installed: ""}
        installable = [(f"{o.item.kind}: {o.item.name}", o.item.path) for o in offer.items if o.status in ("new", "changed")]
        gallery = _avatars(offer)
        return {offer_state: offer, offered: describe(offer), installed: "",
                avatars: gr.update(value=gallery, visible=bool(gallery)),
                choose: gr.update(choices=installable, value=[path for _, path in installable], visible=bool(installable)),
                install_btn: gr.update(visible=bool(installable))}

    def on_install(offer: Offer | None, paths):
        if offer is None or not paths:
            return {installed: "Choose what to install first."}
        try:
            report = sharing.install(offer, list(paths))
        except LIBRARY_ERRORS as exc:
            gr.Warning(str(exc))
            return {installed: f"Nothing installed: {escape_markdown(str(exc))}"}
        lines = [f"- {o.item.kind} **{escape_markdown(str(name))}**" + (" (updated)" if o.status == "changed" else "") for o, name in report.installed]
        return {installed: f"Installed from {report.repo} at `{report.revision[:12]}`:\n" + "\n".join(lines),
                install_btn: gr.update(visible=False), choose: gr.update(visible=False), offer_state: None}

    def on_search(text):
        try:
            hits = sharing.search(text or "")
        except LIBRARY_ERRORS as exc:
            gr.Warning(str(exc))
            return f"Search failed: {escape_markdown(str(exc))}"
        if not hits:
            return "No repos with the tag `storyteller-presets` found."
        return "\n".join(f"- datasets/{escape_markdown(h.repo_id)} · {h.likes} likes · {h.last_modified}" for h in hits)

    publish_box.expand(choices, None, [presets, cards, books], show_progress="hidden")
    form.button.click(on_publish, [form.repo, presets, cards, books, models, form.private, form.message],
                      [form.published, readme_box, readme])
    look_outputs = [offer_state, offered, avatars, choose, install_btn, installed]
    look_btn.click(on_look, [source, revision], look_outputs)
    source.submit(on_look, [source, revision], look_outputs)
    search_btn.click(on_search, search_text, found)
    return install_btn.click(on_install, [offer_state, choose], [installed, install_btn, choose, offer_state])


def describe(offer: Offer) -> str:
    """The offer as a table: each item's status, kind, name and preview (or what changed, or why it is refused)."""
    since = f"; installed before from `{offer.installed_revision[:12]}`" if offer.installed_revision else ""
    kind = "" if offer.indexed else " (no Storyteller index: kinds read from the files)"
    lines = [f"**{escape_markdown(offer.repo)}** at `{offer.revision[:12]}`{since}{kind}", "",
             "| | Kind | Name | What it holds |", "|---|---|---|---|"]
    for o in offer.items:
        detail = "; ".join(o.changes) if o.changes else o.item.preview()
        lines.append(f"| {STATUS_WORDS[o.status]} | {o.item.kind} | {_cell(o.item.name)} | {_cell(detail)} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Outside text in a table cell: on one line, shown as it is (no links, images or tags from it)."""
    return escape_markdown(" ".join(str(text).split()))  # escapes | too


def _avatars(offer: Offer) -> list[tuple[str, str]]:
    """The offered cards' images as files for the gallery."""
    folder = None
    gallery = []
    for o in offer.items:
        package = o.item.content
        if isinstance(package, CardPackage) and package.avatar:
            folder = folder or Path(tempfile.mkdtemp(prefix="storyteller-share-"))
            path = folder / f"{len(gallery)}.{package.avatar_ext or 'png'}"
            path.write_bytes(package.avatar)
            gallery.append((str(path), package.card.name))
    return gallery
