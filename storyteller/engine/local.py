"""The app-side half of the local engine: starts a worker process per loaded model and talks to it."""

from __future__ import annotations

import dataclasses
import multiprocessing
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from storyteller.engine.interface import (
    Done,
    EngineCapabilities,
    EngineError,
    GenerateRequest,
    GenerationEvent,
    LoadPlacement,
    LoadSettings,
    ModelInfo,
    Segment,
    TextChunk,
    WorkerCrashed,
)
from storyteller.engine.kernel_check import CRASH_SIGNALS, KernelVerdicts, model_tensor_types
from storyteller.engine.sampling import SAMPLER_NAMES, SamplerSettings
from storyteller.engine.snapshot_files import SnapshotConfig
from storyteller.engine.load_log import read_load_log
from storyteller.engine.worker import Command, worker_main
from storyteller.engine.worker.process import shut_down

LOG_TAIL_LINES = 8
POLL_SECONDS = 0.05
# llama.cpp in a worker honours every sampler setting and keeps KV snapshots (given a folder for them).
LOCAL_CAPABILITIES = EngineCapabilities(
    sampler_fields=frozenset(SamplerSettings.model_fields),
    samplers=SAMPLER_NAMES,
    banned_strings=True,
    grammar=True,
    router_capture=True,
    tokenizer=True,
    kv_snapshots=True,
    context_shift=True,
)


def gpu_offload_supported() -> bool:
    """Whether this llama-cpp-python build can offload layers to a GPU (CUDA, Metal, Vulkan…)."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


class LocalEngine:
    """Runs one model in a child process; one request at a time (callers queue on a lock)."""

    def __init__(self, log_dir: Path | None = None, kernel_verdicts: Path | None = None,
                 snapshots: SnapshotConfig | None = None):
        """`kernel_verdicts`: the file that keeps the kernel checks' results (None: this engine only);
        `snapshots`: where the workers keep KV snapshots (None: nowhere)."""
        self.snapshots = snapshots
        self.log_dir = Path(log_dir or tempfile.gettempdir())
        self._mp = multiprocessing.get_context("spawn")
        self._stop_event = self._mp.Event()
        self._lock = threading.Lock()  # one request at a time: llama.cpp's context is not shareable
        self._process = None
        self._conn = None
        self._lifeline = None
        self._info: ModelInfo | None = None
        self.settings: LoadSettings | None = None  # the last load's, as the caller gave them; kept after it ends
        self._worker_settings: LoadSettings | None = None  # as the worker got them
        self.verdicts = KernelVerdicts(kernel_verdicts, self.log_dir)
        self._kernels_off: set[str] = set()  # model files whose extra buffer kernels crashed here
        self.crash: WorkerCrashed | None = None  # why the last worker died, until a model loads again

    @property
    def model_info(self) -> ModelInfo | None:
        if self._process is not None and not self._process.is_alive() and not self._lock.locked():
            with self._lock:
                if self._process is not None:
                    self._record_crash()
        return self._info if self._process is not None else None

    @property
    def capabilities(self) -> EngineCapabilities:
        return dataclasses.replace(LOCAL_CAPABILITIES, kv_snapshots=self.snapshots is not None)

    @property
    def placement(self) -> LoadPlacement | None:
        info = self.model_info
        return info.placement if info is not None else None

    @property
    def worker_settings(self) -> LoadSettings | None:
        """The settings the running worker got: extra buffer types resolved to "on" or "off"."""
        return self._worker_settings if self._process is not None else None

    @property
    def worker_pid(self) -> int | None:
        """The worker process's id while one runs (to read what the OS says about it)."""
        return self._process.pid if self._process is not None else None

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def log_path(self) -> Path:
        return self.log_dir / "engine-worker.log"

    def load(self, settings: LoadSettings, on_progress: Callable[[float], None] | None = None) -> ModelInfo:
        """Starts a worker for `settings` (ending any previous one) and waits until the model is loaded.

        Extra buffer types "auto" are on unless the kernel check found that they crash here; a worker
        that dies by a kernel crash while they are on is started again with them off.
        """
        with self._lock:
            extra, notice = self._resolve_extra_buffers(settings)
            try:
                info = self._start(settings, extra, on_progress)
            except WorkerCrashed as crash:
                if extra != "on" or not is_kernel_crash(crash):
                    raise
                notice = self._kernels_crashed(settings)
                info = self._start(settings, "off", on_progress)
            info.notice = notice
            return info

    def generate(self, request: GenerateRequest) -> Iterator[GenerationEvent]:
        """Streams one request; replays it once with extra buffer types off if their kernels crash in it."""
        with self._lock:
            streamed = False
            try:
                for event in self._generate(request):
                    streamed = streamed or isinstance(event, TextChunk)
                    yield event
                return
            except WorkerCrashed as crash:
                used_extra = self._worker_settings is not None and self._worker_settings.extra_buffers == "on"
                if not (used_extra and is_kernel_crash(crash)) or self.settings is None:
                    raise
                settings = self.settings
            notice = self._kernels_crashed(settings)
            self._start(settings, "off", None).notice = notice
            if streamed:  # text already shown cannot be taken back: say what happened instead
                raise EngineError(f"{notice} Send the message again.")
            for event in self._generate(request):
                if isinstance(event, Done):
                    event.notice = notice
                yield event

    def _start(self, settings: LoadSettings, extra_buffers: str, on_progress) -> ModelInfo:
        self._end_worker()
        self.crash = None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        worker_settings = settings.model_copy(update={"extra_buffers": extra_buffers})
        parent_conn, child_conn = self._mp.Pipe()
        lifeline_read, lifeline_write = self._mp.Pipe(duplex=False)
        self._stop_event.clear()
        process = self._mp.Process(
            target=worker_main,
            args=(child_conn, lifeline_read, self._stop_event, str(self.log_path), worker_settings, self.snapshots),
            name="storyteller-engine",
            daemon=True,
        )
        process.start()
        child_conn.close()
        lifeline_read.close()
        self._process, self._conn, self._lifeline = process, parent_conn, lifeline_write
        try:
            while True:
                kind, *rest = self._receive()
                if kind == "progress":
                    if on_progress:
                        on_progress(rest[0].fraction)
                elif kind == "loaded":
                    self._info, self.settings, self._worker_settings = rest[0], settings, worker_settings
                    return self._info
                elif kind == "error":
                    self._end_worker()
                    raise EngineError(rest[0])
        except BaseException:
            self._end_worker()
            raise

    def _generate(self, request: GenerateRequest) -> Iterator[GenerationEvent]:
        self._require_worker()
        self._stop_event.clear()
        self._conn.send(Command("generate", request))
        finished = False
        try:
            while True:
                kind, *rest = self._receive()
                if kind == "error":
                    finished = True
                    raise EngineError(rest[0])
                event = rest[0]
                finished = isinstance(event, Done)
                yield event
                if finished:
                    return
        finally:
            if not finished and self._process is not None:
                self._abandon_request()

    def _resolve_extra_buffers(self, settings: LoadSettings) -> tuple[str, str | None]:
        """"on" or "off" for this load, and a notice when "auto" turned them off."""
        if settings.extra_buffers != "auto":
            return settings.extra_buffers, None
        if settings.model_path in self._kernels_off:
            return "off", None
        try:
            types = model_tensor_types(settings.model_path)
        except (OSError, ValueError):
            return "on", None  # the worker says what is wrong with the file
        crashing = self.verdicts.crashing_types(types)
        if not crashing:
            return "on", None
        return "off", (f"llama.cpp's extra CPU kernels crash on this CPU for {', '.join(sorted(crashing))} "
                       "weights, so they are off for this model.")

    def _kernels_crashed(self, settings: LoadSettings) -> str:
        """Remembers that extra buffer types crashed with this model; the one sentence the user sees."""
        kind = kernel_kind(read_load_log(str(self.log_path)).buffer_types)
        self._kernels_off.add(settings.model_path)
        try:
            types = model_tensor_types(settings.model_path)
        except (OSError, ValueError):
            types = set()
        if types:
            self.verdicts.record(dict.fromkeys(types, "crash"))
        return f"llama.cpp's {kind} kernels crashed on this CPU; they are off now."

    def tokenize(self, prompt: list[Segment]) -> list[int]:
        return self._ask(Command("tokenize", prompt))

    def detokenize(self, tokens: list[int]) -> str:
        return self._ask(Command("detokenize", list(tokens)))

    def _ask(self, command: Command):
        """A command with one answer (no events), run between requests."""
        with self._lock:
            self._require_worker()
            self._conn.send(command)
            kind, *rest = self._receive()
            if kind == "error":
                raise EngineError(rest[0])
            return rest[0]

    def stop(self) -> None:
        self._stop_event.set()

    def unload(self) -> None:
        self.stop()
        with self._lock:
            self._end_worker()

    # --- internals ----------------------------------------------------------------------------

    def _abandon_request(self) -> None:
        # The caller stopped listening mid-stream: stop the worker and read up to its Done, so
        # the next request does not receive this one's leftovers.
        self._stop_event.set()
        try:
            while True:
                kind, *rest = self._receive()
                if kind == "error" or isinstance(rest[0], Done):
                    return
        except WorkerCrashed:
            pass

    def _require_worker(self) -> None:
        if self._process is None:
            raise self.crash or EngineError("no model is loaded")
        if not self._process.is_alive():
            self._raise_crash()

    def _receive(self) -> tuple:
        while True:
            try:
                if self._conn.poll(POLL_SECONDS):
                    return self._conn.recv()
            except (EOFError, OSError):
                self._raise_crash()
            if not self._process.is_alive():
                if self._conn.poll(0):
                    continue  # drain what it sent before it exited
                self._raise_crash()

    def _raise_crash(self):
        raise self._record_crash()

    def _record_crash(self) -> WorkerCrashed:
        process = self._process
        process.join(timeout=5)
        code = process.exitcode
        tail = self._log_tail()
        self._end_worker()
        self.crash = WorkerCrashed(describe_exit(code, tail), code, tail)
        return self.crash

    def _log_tail(self) -> list[str]:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if line.strip()][-LOG_TAIL_LINES:]

    def _end_worker(self) -> None:
        process, self._process = self._process, None
        self._info = None
        if process is None:
            return
        shut_down(process, self._conn, self._lifeline)
        self._conn = self._lifeline = None


def is_kernel_crash(crash: WorkerCrashed) -> bool:
    """A death by the signals a broken CPU kernel causes (not an abort, not a kill)."""
    return crash.exit_code is not None and -crash.exit_code in {int(s) for s in CRASH_SIGNALS}


def kernel_kind(buffer_types: list[str]) -> str:
    if "AMX" in buffer_types:
        return "AMX"
    if any("REPACK" in name for name in buffer_types):
        return "CPU repack"
    return "extra CPU buffer"


def describe_exit(code: int | None, log_tail: list[str]) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        how = f"was killed by {name}"
        if name == "SIGABRT":
            how += " (llama.cpp aborted)"
        elif name == "SIGKILL":
            how += " (out of memory, or killed from outside)"
    else:
        how = f"exited with code {code}"
    message = f"The model worker {how}. The app and your chats are fine; load the model again to go on."
    if log_tail:
        message += "\nLast lines from llama.cpp:\n" + "\n".join(log_tail)
    return message
