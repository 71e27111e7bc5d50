"""Every load setting reaches llama.cpp: read back from llama.cpp, its log and the OS, never assumed.

And no ctypes field the engine sets can be a silent no-op: llama_cpp's structures accept any
attribute name, which is how `use_mmap` / `use_mlock` did nothing after llama.cpp renamed them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from storyteller.engine import LoadSettings, LocalEngine

STRICT_CHECK = textwrap.dedent("""
    import llama_cpp
    from storyteller.engine.interface import LoadSettings
    from storyteller.engine.llama_params import context_params, model_params, strict_structures
    from storyteller.engine.sampling import SamplerSettings

    strict_structures(llama_cpp)
    for name, struct in [("llama_model_params", llama_cpp.llama_model_default_params()),
                         ("llama_context_params", llama_cpp.llama_context_default_params()),
                         ("llama_sampler_chain_params", llama_cpp.llama_sampler_chain_default_params()),
                         ("llama_batch", llama_cpp.llama_batch_init(8, 0, 1))]:
        for field in ("use_mmap", "no_such_field"):
            try:
                setattr(struct, field, 1)
                print("accepted", name, field)
            except AttributeError:
                print("refused", name, field)
    for mmap in (False, True):
        for mlock in (False, True):
            for extra in ("on", "off"):
                p = model_params(llama_cpp, LoadSettings(model_path="x", use_mmap=mmap, use_mlock=mlock,
                                                         extra_buffers=extra, n_gpu_layers=0))
                print("model", int(mmap), int(mlock), extra, p.load_mode, int(p.use_extra_bufts), p.n_gpu_layers)
    c = context_params(llama_cpp, LoadSettings(model_path="x", n_ctx=1024, n_batch=1024, n_threads=3,
                                               flash_attn="on", cache_type_k="q8_0", cache_type_v="q4_0"))
    print("context", c.n_ctx, c.n_batch, c.n_ubatch, c.n_threads, c.n_threads_batch, c.flash_attn_type,
          c.type_k, c.type_v, int(c.swa_full), int(c.no_perf))
    print("modes", llama_cpp.LLAMA_LOAD_MODE_NONE, llama_cpp.LLAMA_LOAD_MODE_MMAP, llama_cpp.LLAMA_LOAD_MODE_MLOCK,
          llama_cpp.LLAMA_LOAD_MODE_MMAP_MLOCK, llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED)
""")


def test_the_engine_structures_refuse_fields_llama_cpp_does_not_have_and_get_every_setting():
    # In a child process: strictness changes llama_cpp's classes for the whole process.
    out = subprocess.run([sys.executable, "-c", STRICT_CHECK], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert "refused llama_model_params use_mmap" in lines  # the field that silently did nothing
    assert all(line.startswith("refused") for line in lines if line.endswith("no_such_field"))
    assert sum(line.endswith("no_such_field") for line in lines) == 4
    none, mmap, mlock, both, fa_on = (int(v) for v in next(l for l in lines if l.startswith("modes")).split()[1:])
    models = {tuple(l.split()[1:4]): tuple(int(v) for v in l.split()[4:]) for l in lines if l.startswith("model ")}
    assert models[("0", "0", "off")] == (none, 0, 0)
    assert models[("1", "0", "on")] == (mmap, 1, 0)
    assert models[("0", "1", "on")] == (mlock, 1, 0)
    assert models[("1", "1", "off")] == (both, 0, 0)
    context = [int(v) for v in next(l for l in lines if l.startswith("context")).split()[1:]]
    assert context == [1024, 1024, 512, 3, 3, fa_on, 8, 2, 1, 1]  # q8_0 = 8, q4_0 = 2; ubatch capped at 512


def _worker_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _maps_file(pid: int, path: Path) -> bool:
    return str(path.resolve()) in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the worker's memory map from /proc")
@pytest.mark.parametrize("use_mmap, use_mlock", [(True, False), (False, True)])
def test_every_model_tab_setting_reaches_llama_cpp(tiny_model, tmp_path, use_mmap, use_mlock):
    engine = LocalEngine(log_dir=tmp_path)
    settings = LoadSettings(model_path=str(tiny_model), n_gpu_layers=0, n_ctx=512, n_batch=64, n_threads=1,
                            flash_attn="off", cache_type_k="q8_0", cache_type_v="f16", use_mmap=use_mmap,
                            use_mlock=use_mlock, expert_used_count=1, extra_buffers="off")
    try:
        info = engine.load(settings)
        log = engine.log_path.read_text(errors="replace")
        status = _worker_status(engine.worker_pid)
        mapped = _maps_file(engine.worker_pid, tiny_model)
    finally:
        engine.unload()
    assert (info.n_ctx, info.n_batch, info.n_ubatch, info.n_threads, info.n_threads_batch) == (512, 64, 64, 1, 1)
    assert info.gpu_layers == 0 and info.expert_used_count == 1
    assert re.search(r"n_expert_used\s+= 1\b", log)  # the override reached the model's hyperparameters
    assert re.search(r"flash_attn\s+= disabled", log)
    assert "K (q8_0)" in log and "V (f16)" in log
    assert f"load_mode = {'mmap' if use_mmap else 'mlock' if use_mlock else 'none'}" in log
    assert mapped == use_mmap  # the file itself is mapped into the worker only with mmap
    if use_mlock:
        assert int(status["VmLck"].split()[0]) > 0  # llama.cpp locked the weights in RAM
    assert not info.extra_buffers and "CPU_REPACK" not in info.buffer_types
