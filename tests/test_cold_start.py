"""What the app's cold start relies on: gradio imported without its stub writer, and --model loading
while gradio imports (the page still comes up after a failed load)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from tests.support.app_runner import running_app
from tests.support.paths import ROOT

CHECK_IMPORT = """
import storyteller.ui  # first: installs the import hook
import gradio as gr
import gradio.component_meta as meta
print(meta.create_or_modify_pyi.__module__)
with gr.Blocks() as demo:
    box = gr.Textbox()
    box.change(lambda text: text, box, box)  # the metaclass still made the event listeners
print(len(demo.fns))
"""


def test_gradio_imports_without_its_stub_writer_and_still_builds_apps():
    result = subprocess.run([sys.executable, "-c", CHECK_IMPORT], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["storyteller.ui.gradio_import", "1"]


@pytest.mark.server
def test_a_model_that_fails_to_load_at_start_still_leaves_the_page_up(broken_model, tmp_path):
    with running_app(tmp_path, "--model", str(broken_model)) as app:
        with urllib.request.urlopen(app.url, timeout=10) as answer:
            assert answer.status == 200
        log = (tmp_path / "server.log").read_text()
    assert f"could not load {broken_model}" in log
    assert "Traceback" not in log
