"""Models tab, its library part (first): curated catalog, any Hub repo's GGUFs with fit and layout checks, downloads with
progress and Cancel, the local models (downloaded or added by path) and one-click loading."""

from __future__ import annotations

import threading

import gradio as gr

from storyteller.core.models.library import FileCheck, Library, RepoView, human_size
from storyteller.core.services import Services
from storyteller.hub.catalog import CatalogEntry, ModelFiles
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.downloads import LIBRARY_ERRORS, download_with_progress, progress_html, shown_in
from storyteller.ui.widgets.model_load import load_with_progress

FILE_HEADERS = ["Quant", "Size", "File", "Fit (estimate)"]
LOCAL_HEADERS = ["Name", "Architecture", "Quant", "Experts", "Context", "Template", "Size", "Path"]


def catalog_card(entry: CatalogEntry) -> str:
    arch = entry.architecture
    experts = (f"{arch.experts_total} experts, {arch.experts_used} per token · ≈{arch.params_total_b}B total / "
               f"≈{arch.params_active_b}B active" if arch.experts_total else f"dense · ≈{arch.params_total_b}B")
    lines = [
        f"**{entry.name}** — {entry.description}",
        f"Original: `{entry.original_repo}` · {experts} · prompt format `{entry.prompt_format}` · "
        f"context {entry.context.practical} (max {entry.context.maximum}) · license {entry.license}",
    ]
    if (experts_line := entry.experts_line()) is not None:
        lines.append(experts_line + (f" · {entry.router_note}" if entry.router_note else ""))
    if entry.gguf_repos:
        lines.append("GGUF repos: " + ", ".join(f"`{r.repo}`" for r in entry.gguf_repos))
    else:
        lines.append(f"⚠ {entry.no_gguf_note or 'No GGUF is known.'} Search for “{entry.hub_search or entry.name}” below.")
    return "  \n".join(lines)


def check_text(model: ModelFiles, check: FileCheck) -> str:
    layout = ("⚠ " if check.old_layout else "✓ ") + check.layout
    return f"**{model.name}** · {human_size(model.size)} · layout: {layout}  \nFit: {check.fit.summary()}"


def local_rows(library: Library) -> list[list]:
    rows = []
    for record in library.list():
        h = record.header
        experts = f"{h.get('experts_used')}/{h.get('experts')}" if h.get("experts") else "dense"
        rows.append([record.name, h.get("architecture"), record.quant or h.get("quant") or "?", experts,
                     h.get("context_length"), "yes" if h.get("chat_template") else "no", human_size(record.size_bytes), record.path])
    return rows


def no_models_line(library: Library) -> str:
    if library.list():
        return ""
    return ("No local models yet: download one above (start with a curated model) or add a GGUF already on disk "
            "by its path below.")


def build(services: Services, tab: gr.Tab, activity: Activity) -> gr.Dropdown:
    """The library's part of the Models tab (`tab`: opening it reads the local models again); returns
    the local-model picker, which the load settings below follow."""
    library = services.library
    cancels: dict[str, threading.Event] = {}  # per browser session: what Cancel sets
    with gr.Column(elem_id="library"):
        gr.Markdown("### Find and download")
        with gr.Row():
            catalog_pick = gr.Dropdown([(e.name, e.id) for e in library.catalog.models], value=None,
                                       label="Curated models", elem_id="catalog-pick", scale=2)
            repo_box = gr.Textbox(label="…or any Hub repo (owner/name or URL)", elem_id="repo-box", scale=3)
            show_btn = gr.Button("Show files", elem_id="show-files", scale=1)
        catalog_md = gr.Markdown(elem_id="catalog-card")
        with gr.Row():
            search_box = gr.Textbox(label="Search the Hub for GGUF repos", elem_id="search-box", scale=4)
            search_btn = gr.Button("Search", elem_id="search", scale=1)
        search_pick = gr.Dropdown([], label="Search results (pick one to show its files)", elem_id="search-results")
        files_table = gr.Dataframe(headers=FILE_HEADERS, interactive=False, elem_id="files-table", wrap=True)
        file_pick = gr.Dropdown([], label="File to download", elem_id="file-pick")
        check_md = gr.Markdown(elem_id="file-check")
        with gr.Row():
            download_btn = gr.Button("Download", variant="primary", elem_id="download")
            cancel_btn = gr.Button("Cancel", elem_id="cancel-download")
        progress = gr.HTML(elem_id="download-progress")
        view_state = gr.State(None)

        gr.Markdown("### Your models")
        local_empty = gr.Markdown(lambda: no_models_line(library), elem_id="local-models-empty")
        local_table = gr.Dataframe(local_rows(library), headers=LOCAL_HEADERS, interactive=False, elem_id="local-models", wrap=True)
        with gr.Row():
            local_pick = gr.Dropdown([r.name for r in library.list()], label="Model", elem_id="local-pick", scale=3)
            load_btn = gr.Button("Load (recommended settings)", variant="primary", elem_id="library-load", scale=1)
            remove_btn = gr.Button("Remove", elem_id="library-remove", scale=1)
        local_status = gr.Markdown(elem_id="library-status")
        with gr.Row():
            add_path = gr.Textbox(label="Add a GGUF already on disk by its path (it is not copied)", elem_id="add-path", scale=4)
            add_btn = gr.Button("Add", elem_id="library-add", scale=1)
        def refresh_local(message: str = ""):
            names = [r.name for r in library.list()]
            return {local_table: local_rows(library), local_pick: gr.update(choices=names, value=names[-1] if names else None),
                    local_status: message, local_empty: no_models_line(library)}

        def on_catalog(entry_id):
            entry = next((e for e in library.catalog.models if e.id == entry_id), None)
            if entry is None:
                return "", gr.update()
            return catalog_card(entry), (entry.gguf_repos[0].repo if entry.gguf_repos else "")

        def show_files(repo_text):
            if not (repo_text or "").strip():
                return None, [], gr.update(choices=[], value=None), "Pick a curated model, type a repo, or search."
            try:
                view = library.browse(repo_text)
                default = library.default_model(view)
                check = library.check_file(view.listing.repo_id, default, view.listing.commit)
                fits = library.fits_for(view, check)
            except LIBRARY_ERRORS as exc:
                return None, [], gr.update(choices=[], value=None), f"**{exc}**"
            rows = [[m.quant or "?", human_size(m.size), m.name + (f" ({len(m.parts)} parts)" if m.is_split else ""),
                     f"{f.verdict} · {f.placement}"]
                    for m, f in zip(view.models, fits)]
            choices = [m.name for m in view.models]
            return view, rows, gr.update(choices=choices, value=default.name), check_text(default, check)

        def on_pick(view: RepoView | None, name):
            model = _model(view, name)
            if model is None:
                return gr.update()
            try:
                return check_text(model, library.check_file(view.listing.repo_id, model, view.listing.commit))
            except LIBRARY_ERRORS as exc:
                return f"**{exc}**"

        def on_search(text):
            try:
                hits = library.search(text or "")
            except LIBRARY_ERRORS as exc:
                return gr.update(choices=[], value=None, label=f"Search: {exc}")
            choices = [(f"{h.repo_id} · {h.downloads} downloads", h.repo_id) for h in hits]
            return gr.update(choices=choices, value=None, label=f"Search results: {len(hits)} repos (pick one)")

        def on_download(view: RepoView | None, name, request: gr.Request):
            model = _model(view, name)
            if model is None:
                yield {progress: progress_html(None, "Show a repo's files and pick one first."), **refresh_local()}
                return
            cancel = cancels[request.session_hash] = threading.Event()
            yield refresh_local()
            try:
                record = yield from shown_in(progress, download_with_progress(
                    lambda on_progress, on_status: library.download(
                        view.listing.repo_id, model, view.listing.commit, cancel=cancel,
                        on_progress=on_progress, on_status=on_status),
                    model.name, activity, f"download:{request.session_hash}"))
            finally:
                cancels.pop(request.session_hash, None)
            if record is not None:
                yield refresh_local(f"Added **{record.name}**: press Load.")

        def on_cancel(request: gr.Request):
            event = cancels.get(request.session_hash)
            if event is not None:
                event.set()

        def on_load(name):
            try:
                record = library.find(name or "")
                settings = library.prepare_load(record)
            except LIBRARY_ERRORS as exc:
                yield f"**{exc}**"
                return
            yield from load_with_progress(services, settings, activity)

        def on_remove(name):
            try:
                record = library.remove(name or "")
            except LIBRARY_ERRORS as exc:
                return refresh_local(f"**{exc}**")
            kept = " (the file stays where it is)" if record.source == "added" else " and deleted its files"
            return refresh_local(f"Removed **{record.name}**{kept}.")

        def on_add(path):
            try:
                record = library.add_existing(path or "")
            except LIBRARY_ERRORS as exc:
                return refresh_local(f"**{exc}**")
            return refresh_local(f"Added **{record.name}** from {record.path}.")

        files_outputs = [view_state, files_table, file_pick, check_md]
        local_outputs = [local_table, local_pick, local_status, local_empty]
        tab.select(refresh_local, None, local_outputs)  # other sessions and the CLI change the library too
        catalog_pick.change(on_catalog, catalog_pick, [catalog_md, repo_box]).then(show_files, repo_box, files_outputs)
        show_btn.click(show_files, repo_box, files_outputs)
        repo_box.submit(show_files, repo_box, files_outputs)
        search_btn.click(on_search, search_box, search_pick)
        search_box.submit(on_search, search_box, search_pick)
        search_pick.change(lambda repo: repo or gr.update(), search_pick, repo_box).then(show_files, repo_box, files_outputs)
        file_pick.input(on_pick, [view_state, file_pick], check_md)
        download_btn.click(on_download, [view_state, file_pick], [progress, *local_outputs], concurrency_id="downloads")
        cancel_btn.click(on_cancel, None, None, concurrency_limit=None)
        load_btn.click(on_load, local_pick, local_status, concurrency_id="engine")
        remove_btn.click(on_remove, local_pick, local_outputs)
        add_btn.click(on_add, add_path, local_outputs)
    return local_pick


def _model(view: RepoView | None, name: str | None) -> ModelFiles | None:
    if view is None or not name:
        return None
    return next((m for m in view.models if m.name == name), None)
