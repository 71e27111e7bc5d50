"""The bridge from a blocking job (a model load, a download) to a Gradio generator handler.

The job runs in a thread and reports progress through a callback; iterating the task yields each
report in order until the job ends; then `value` holds its result, or `error` the exception it
raised (only the kinds named in `catch`: anything else is the thread's own traceback).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Report = TypeVar("Report")
Result = TypeVar("Result")
_END = object()


class BackgroundTask(Generic[Report, Result]):
    def __init__(self, job: Callable[[Callable[[Report], None]], Result], catch: tuple[type[BaseException], ...] = ()):
        self.value: Result | None = None
        self.error: BaseException | None = None
        self._reports: queue.Queue = queue.Queue()
        self._catch = catch
        threading.Thread(target=self._run, args=(job,), daemon=True).start()

    def _run(self, job: Callable[[Callable[[Report], None]], Result]) -> None:
        try:
            self.value = job(self._reports.put)
        except self._catch as exc:
            self.error = exc
        finally:
            self._reports.put(_END)

    def __iter__(self) -> Iterator[Report]:
        """The job's reports as they come; ends when the job does (then `value` or `error` is set)."""
        while (report := self._reports.get()) is not _END:
            yield report
