"""Makes `import gradio` skip work that only gradio's own developers need.

On every import, gradio's component metaclass (`gradio.component_meta.create_or_modify_pyi`) reads
each component's source, parses it, renders a stub template and compares it with the shipped `.pyi`
file, to keep type stubs current while gradio itself is developed. That is about 1.6 s of a 3.5 s
import on a 2-core machine, and a large part of the app's cold start. The stubs ship with the wheel,
so skipping the step changes nothing at run time. When gradio is already imported, or a gradio
version no longer has the function, this does nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

STUB_MODULE = "gradio.component_meta"
STUB_FUNCTION = "create_or_modify_pyi"


class _SkipStubs(importlib.abc.MetaPathFinder):
    """Finds gradio.component_meta as usual, and replaces its stub writer once the module has run."""

    def find_spec(self, name, path, target=None):
        if name != STUB_MODULE:
            return None
        sys.meta_path.remove(self)  # one module, once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            if hasattr(module, STUB_FUNCTION):
                setattr(module, STUB_FUNCTION, _no_stubs)

        spec.loader.exec_module = exec_module
        return spec


def _no_stubs(*_args, **_kwargs) -> None:
    return None


def skip_stub_generation() -> None:
    if STUB_MODULE in sys.modules or any(isinstance(f, _SkipStubs) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _SkipStubs())
