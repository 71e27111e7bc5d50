"""Settings tab, its General sub-tab: the data folder, the Hugging Face token and "Back up now"."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import gradio as gr

from storyteller.core.data.backup import BackupSummary, create_backup
from storyteller.core.models.library import human_size
from storyteller.core.services import Services
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.background import BackgroundTask
from storyteller.ui.widgets.errors import USER_ERRORS


def token_line(services: Services) -> str:
    return "A token is set." if services.settings.hub_token() else "No token set."


def backup_line(summary: BackupSummary) -> str:
    models = ("with the models" if summary.with_models
              else f"without the models ({human_size(summary.models_bytes)} left out)" if summary.models_bytes else "")
    parts = [f"✓ Backed up {summary.files} file{'' if summary.files == 1 else 's'}, {human_size(summary.total_bytes)}", models]
    if summary.skipped:
        parts.append(f"{len(summary.skipped)} skipped (gone while it ran)")
    return " · ".join(p for p in parts if p) + ": download it below."


def build(services: Services, parent: gr.Tab, activity: Activity) -> gr.Tab:
    """The General sub-tab; returned, so other parts can add themselves to it."""
    backup_root = Path(tempfile.mkdtemp(prefix="storyteller-backups-"))

    with gr.Tab("General", id="general") as general:
        gr.Markdown(f"**Data folder:** `{services.data_dir}`  \n"
                    "The database, downloaded models, avatars and logs live here (`--data-dir` or "
                    "`$STORYTELLER_HOME` choose another).", elem_id="data-folder")

        gr.Markdown("### Hugging Face token")
        with gr.Row():
            token_box = gr.Textbox(type="password", label="HF token, for gated or private repos (stored in the app's settings only)",
                                   elem_id="hf-token", scale=4)
            token_btn = gr.Button("Save token", elem_id="save-token", scale=1)
        token_md = gr.Markdown(token_line(services), elem_id="token-status")

        gr.Markdown("### Backup")
        gr.Markdown("The whole data folder as one zip archive, taken while the app runs (even while a reply "
                    "streams); logs are left out. Restore it into an empty folder with "
                    "`storyteller data restore FILE.zip --data-dir DIR`.")
        with gr.Row():
            with_models = gr.Checkbox(False, label="with models (can be many GB)", elem_id="backup-with-models", scale=2)
            backup_btn = gr.Button("Back up now", variant="primary", elem_id="backup-now", scale=1)
        backup_status = gr.Markdown(elem_id="backup-status")
        backup_file = gr.File(label="Backup archive", visible=False, interactive=False, elem_id="backup-file")

    def on_token(token):
        services.library.set_token(token)
        return "Token saved." if (token or "").strip() else "Token cleared."

    def on_backup(models: bool, request: gr.Request):
        folder = Path(tempfile.mkdtemp(dir=backup_root))
        target = folder / f"storyteller-backup-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        key = f"backup:{request.session_hash}"
        task: BackgroundTask[float, BackupSummary] = BackgroundTask(
            lambda report: create_backup(services.data_dir, target, with_models=bool(models), on_progress=report),
            catch=(*USER_ERRORS, OSError),
        )
        try:
            activity.set(key, "Backing up the data folder…")
            yield "Backing up…", gr.update(visible=False, value=None)
            for fraction in task:
                line = f"Backing up the data folder… {fraction:.0%}"
                activity.set(key, line)
                yield line, gr.update()
        finally:
            activity.clear(key)
        if task.error is not None:
            yield f"✗ Backup failed: {task.error}", gr.update(visible=False, value=None)
        else:
            yield backup_line(task.value), gr.update(value=str(target), visible=True)

    token_btn.click(on_token, token_box, token_md).then(lambda: "", None, token_box)
    backup_btn.click(on_backup, with_models, [backup_status, backup_file], concurrency_id="backup")
    parent.select(lambda: token_line(services), None, token_md, show_progress="hidden")
    return general
