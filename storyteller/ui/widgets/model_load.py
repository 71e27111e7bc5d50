"""Loading a model with progress, for every place that offers a Load button (Models tab, the header,
Chat's reload)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from storyteller.core.models.loading import describe_model
from storyteller.core.services import Services
from storyteller.engine import EngineError, LoadSettings, ModelInfo, WorkerCrashed
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.background import BackgroundTask


def load_with_progress(services: Services, settings: LoadSettings, activity: Activity | None = None,
                       describe: Callable[[ModelInfo | None], str] = describe_model) -> Iterator[str]:
    """Loads in a thread and yields status lines (Markdown) as llama.cpp reports progress; `activity`
    (the header's "what runs now") shows the load while it runs; `describe` says what got loaded."""
    name = Path(settings.model_path).name
    key = f"load:{id(settings)}"
    try:
        task: BackgroundTask[float, ModelInfo] = BackgroundTask(
            lambda report: services.load_model(settings, on_progress=report), catch=(EngineError,)
        )
        line = f"Starting the model worker for **{name}**…"
        if activity is not None:
            activity.set(key, line)
        yield line
        for fraction in task:
            line = f"Loading **{name}**… {fraction:.0%}"
            if activity is not None:
                activity.set(key, line)
            yield line
    finally:
        if activity is not None:
            activity.clear(key)
    if task.error is not None:
        title = "The model worker crashed while loading" if isinstance(task.error, WorkerCrashed) else "Could not load the model"
        yield f"**{title}.**\n\n```\n{task.error}\n```"
    else:
        yield f"Loaded: {describe(task.value)}"
