"""Loading a model with progress, for every tab that offers a Load button (Model, Library, Chat's reload)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from storyteller.core.models.loading import describe_model
from storyteller.core.services import Services
from storyteller.engine import EngineError, LoadSettings, ModelInfo, WorkerCrashed
from storyteller.ui.widgets.background import BackgroundTask


def load_with_progress(services: Services, settings: LoadSettings) -> Iterator[str]:
    """Loads in a thread and yields status lines (Markdown) as llama.cpp reports progress."""
    task: BackgroundTask[float, ModelInfo] = BackgroundTask(
        lambda report: services.load_model(settings, on_progress=report), catch=(EngineError,)
    )
    name = Path(settings.model_path).name
    yield f"Starting the model worker for **{name}**…"
    for fraction in task:
        yield f"Loading **{name}**… {fraction:.0%}"
    if task.error is not None:
        title = "The model worker crashed while loading" if isinstance(task.error, WorkerCrashed) else "Could not load the model"
        yield f"**{title}.**\n\n```\n{task.error}\n```"
    else:
        yield f"Loaded: {describe_model(task.value)}"
