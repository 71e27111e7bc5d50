"""Presets tab: pick, edit, save, rename, delete, set the default, import (drag and drop) and export."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from annotated_types import Ge, Gt, Le

from storyteller.core.presets.preset_import import read_preset_file
from storyteller.core.presets.presets import (
    Preset,
    PresetError,
    PresetLibrary,
    preset_file_name,
    preset_from_settings,
    write_preset_file,
)
from storyteller.core.services import Services
from storyteller.ui.tabs import sharing
from storyteller.ui.widgets.errors import USER_ERRORS
from storyteller.engine import SamplerSettings
from storyteller.engine.sampling import SAMPLER_NAMES

MODIFIED = "● modified, not saved"


@dataclass(frozen=True)
class Field:
    key: str  # llama.cpp's name, as in a preset file
    label: str
    kind: str  # "slider" | "integer" | "json" | "checkbox" | "mirostat" | "order" | "text"
    info: str = ""


GROUPS: list[tuple[str, bool, list[Field]]] = [
    ("Temperature and truncation", True, [
        Field("temperature", "Temperature", "slider", "0 always picks the likeliest token"),
        Field("dynatemp_range", "Dynamic temperature range", "slider", "± around the temperature, by entropy; 0 = off"),
        Field("dynatemp_exponent", "Dynamic temperature exponent", "slider"),
        Field("top_k", "Top-k", "integer", "0 = off"),
        Field("top_p", "Top-p", "slider", "1 = off"),
        Field("min_p", "Min-p", "slider", "0 = off"),
        Field("typical_p", "Typical-p", "slider", "1 = off"),
        Field("top_n_sigma", "Top-nσ", "slider", "0 or less = off"),
    ]),
    ("XTC (exclude top choices)", False, [
        Field("xtc_threshold", "XTC threshold", "slider", "above 0.5 XTC is off"),
        Field("xtc_probability", "XTC probability", "slider", "0 = off"),
    ]),
    ("DRY (don't repeat yourself)", False, [
        Field("dry_multiplier", "DRY multiplier", "slider", "0 = off"),
        Field("dry_base", "DRY base", "slider"),
        Field("dry_allowed_length", "DRY allowed length", "integer"),
        Field("dry_penalty_last_n", "DRY penalty range", "integer", "tokens; -1 = the whole context, 0 = off"),
        Field("dry_sequence_breakers", "DRY sequence breakers", "json", 'a JSON list, e.g. ["\\n", ":", "\\"", "*"]'),
    ]),
    ("Repetition penalties", False, [
        Field("repeat_penalty", "Repetition penalty", "slider", "1 = off"),
        Field("repeat_last_n", "Penalty range", "integer", "tokens; -1 = the whole context, 0 = off"),
        Field("presence_penalty", "Presence penalty", "slider"),
        Field("frequency_penalty", "Frequency penalty", "slider"),
    ]),
    ("Mirostat", False, [
        Field("mirostat", "Mirostat", "mirostat", "replaces top-k … XTC with its own truncation"),
        Field("mirostat_tau", "Mirostat tau", "slider", "target surprise"),
        Field("mirostat_eta", "Mirostat eta", "slider", "learning rate"),
    ]),
    ("Output, bans and order", False, [
        Field("n_predict", "Max new tokens", "integer", "-1 = the chat's own limit"),
        Field("seed", "Seed", "integer", "-1 = a new one each time"),
        Field("stop", "Stop strings", "json", 'a JSON list, e.g. ["\\nUser:"]'),
        Field("banned_strings", "Banned strings", "json", "a JSON list of phrases never written (case ignored)"),
        Field("logit_bias", "Logit bias", "json", 'a JSON list of [token id or text, bias], false bans: [["the", -2], [13, false]]'),
        Field("ignore_eos", "Ban end of text (ignore EOS)", "checkbox"),
        Field("samplers", "Sampler order", "order", "the samplers that run, in this order"),
        Field("grammar", "GBNF grammar", "text", "empty = none"),
    ]),
]
FIELDS = [field for _, _, fields in GROUPS for field in fields]


def _bounds(key: str) -> tuple[float | None, float | None]:
    """The validation range of a sampler field, so a widget never offers a value it would refuse."""
    if key not in SamplerSettings.model_fields:
        return -1, None  # n_predict: -1 or more
    low = high = None
    for rule in SamplerSettings.model_fields[key].metadata:
        if isinstance(rule, (Ge, Gt)):
            low = rule.ge if isinstance(rule, Ge) else rule.gt
        elif isinstance(rule, Le):
            high = rule.le
    return (-1, high) if key == "seed" else (low, high)  # seed: -1 is llama.cpp's "random"


def _component(field: Field):
    common = {"label": field.label, "info": field.info or None, "elem_id": f"preset-{field.key}", "min_width": 260}
    if field.kind == "slider":
        low, high = _bounds(field.key)
        step = 0.001 if high is not None and high - low <= 2 else 0.01
        return gr.Slider(low, high, step=step, **common)
    if field.kind == "integer":
        low, high = _bounds(field.key)
        return gr.Number(precision=0, minimum=low, maximum=high, **common)
    if field.kind == "checkbox":
        return gr.Checkbox(**common)
    if field.kind == "mirostat":
        return gr.Radio([("off", 0), ("1", 1), ("2", 2)], **common)
    if field.kind == "order":
        return gr.Dropdown(list(SAMPLER_NAMES), multiselect=True, **common)
    return gr.Textbox(lines=3 if field.kind == "text" else 1, **common)


def inputs_from_preset(preset: Preset) -> list:
    settings = preset.settings()
    return [json.dumps(settings[f.key], ensure_ascii=False) if f.kind == "json" else settings[f.key] for f in FIELDS]


def preset_from_inputs(name: str, description: str, values: list) -> Preset:
    """The preset the form shows. Raises PresetError naming the field for a bad value."""
    settings = {}
    for field, value in zip(FIELDS, values):
        if field.kind == "json":
            try:
                value = json.loads(value or "[]")
            except json.JSONDecodeError as exc:
                raise PresetError(f"{field.key}: not valid JSON ({exc.msg})") from None
        elif field.kind == "integer":
            value = int(value) if value is not None else -1
        settings[field.key] = value
    return preset_from_settings(name, description or "", settings)


def preset_choices(library: PresetLibrary) -> list[tuple[str, str]]:
    default = library.default_name()
    choices = []
    for entry in library.entries():
        name = entry.preset.name
        marks = ["bundled"] * entry.bundled + ["default"] * (name == default)
        choices.append((f"{name} ({', '.join(marks)})" if marks else name, name))
    return choices


def own_presets_line(library: PresetLibrary) -> str:
    """What to do while every preset is a bundled one; empty once the user has one of their own."""
    if any(not entry.bundled for entry in library.entries()):
        return ""
    return ("No presets of your own yet: change a bundled one and **Save as** under a new name, or import a "
            "preset file below.")


def status_line(library: PresetLibrary, name: str, modified: bool) -> str:
    entry = library.find(name)
    if entry is None:
        return ""
    kind = "bundled, read-only: use Save as to keep changes" if entry.bundled else "your preset"
    default = " · default for new chats" if name == library.default_name() else ""
    return f"**{name}** · {kind}{default}" + (f" · **{MODIFIED}**" if modified else "")


def build(services: Services) -> None:
    library = services.presets
    with gr.Tab("Presets", id="presets"):
        with gr.Row():
            picker = gr.Dropdown(label="Preset", scale=3, elem_id="preset-picker")
            with gr.Column(scale=4):
                status = gr.Markdown(elem_id="preset-status")
                description = gr.Textbox(label="Description", elem_id="preset-description")
        own_md = gr.Markdown(elem_id="presets-own-empty")
        with gr.Row():
            save_btn = gr.Button("Save", variant="primary", elem_id="preset-save")
            new_name = gr.Textbox(placeholder="New name…", show_label=False, scale=2, elem_id="preset-new-name")
            save_as_btn = gr.Button("Save as", elem_id="preset-save-as")
            rename_btn = gr.Button("Rename", elem_id="preset-rename")
            delete_btn = gr.Button("Delete", variant="stop", elem_id="preset-delete")
            default_btn = gr.Button("Use for new chats", elem_id="preset-default")
        with gr.Row():
            importer = gr.File(
                label="Import a preset: drop a Storyteller, SillyTavern or KoboldCpp .json, or a text-generation-webui .yaml",
                file_types=[".json", ".yaml", ".yml"], type="filepath", height=120, elem_id="preset-import",
            )
            with gr.Column():
                export_btn = gr.Button("Export to a file", elem_id="preset-export")
                exported = gr.File(label="Exported preset", visible=False, interactive=False, elem_id="preset-exported")
        notices = gr.Markdown(elem_id="preset-notices")
        widgets = []
        for title, is_open, fields in GROUPS:
            with gr.Accordion(title, open=is_open):
                with gr.Row(equal_height=False):
                    for field in fields:
                        widgets.append(_component(field))

        def editor(name: str, note: str = "", name_used: bool = False) -> list:
            """Everything the form shows for a preset, in the order of editor_outputs.

            `name_used`: the action took the new-name box's text, so the box is emptied.
            """
            preset = library.get(name)
            return [
                gr.update(choices=preset_choices(library), value=name),
                status_line(library, name, False),
                preset.description,
                "" if name_used else gr.update(),
                note,
                own_presets_line(library),
                *inputs_from_preset(preset),
            ]

        editor_outputs = [picker, status, description, new_name, notices, own_md, *widgets]

        def on_pick(name):
            return editor(name)

        def on_edit(name, text, *values):
            if not name:
                return ""  # the page is still loading its preset
            try:
                shown = preset_from_inputs(name, text, list(values))
            except PresetError:
                return status_line(library, name, True)  # a half-typed value is a change too
            return status_line(library, name, shown != library.get(name))

        def act(action):
            """Runs an action on the form's preset; a PresetError becomes a warning, the form stays."""

            def handler(name, text, new, *values):
                try:
                    return action(name, text, (new or "").strip(), list(values))
                except USER_ERRORS as exc:
                    gr.Warning(str(exc))
                    return [gr.update()] * len(editor_outputs)

            return handler

        def save(name, text, _new, values):
            library.save(preset_from_inputs(name, text, values))
            return editor(name, note=f"Saved **{name}**.")

        def save_as(name, text, new, values):
            preset = library.create(preset_from_inputs(new or library.unique_name(name), text, values))
            return editor(preset.name, note=f"Saved as **{preset.name}**.", name_used=True)

        def rename(name, _text, new, _values):
            library.rename(name, new)
            return editor(library.get(new).name, note=f"Renamed **{name}** to **{new}**.", name_used=True)

        def delete(name, _text, _new, _values):
            library.delete(name)
            return editor(library.default_name() or library.names()[0], note=f"Deleted **{name}**.")

        def make_default(name, _text, _new, values):
            library.set_default(name)
            return editor(name, note=f"New chats use **{name}**.")

        def on_import(path):
            if not path:
                return [gr.update()] * (len(editor_outputs) + 1)
            try:
                imported = read_preset_file(Path(path))
                preset = library.create(imported.preset.model_copy(update={"name": library.unique_name(imported.preset.name)}))
            except USER_ERRORS as exc:
                gr.Warning(str(exc))
                return [None] + [gr.update()] * len(editor_outputs)
            lines = [f"Imported **{preset.name}** from a {imported.source_format} preset."]
            lines += [f"- {notice}" for notice in imported.notices]
            return [None, *editor(preset.name, note="\n".join(lines))]

        def on_export(name, text, *values):
            try:
                preset = preset_from_inputs(name, text, list(values))
            except USER_ERRORS as exc:
                gr.Warning(str(exc))
                return gr.update()
            path = Path(tempfile.mkdtemp(prefix="storyteller-preset-")) / preset_file_name(preset.name)
            write_preset_file(preset, path)
            return gr.update(value=str(path), visible=True)

        # One queue for everything that shows or changes a preset, so answers arrive in the order
        # of the clicks: a "modified" mark computed before a save can never land after it.
        serial = {"concurrency_id": "presets", "concurrency_limit": 1}
        # .select: only a choice the user makes (the dropdown's input event also fires on blur).
        picker.select(on_pick, picker, editor_outputs, show_progress="hidden", **serial)
        form = [picker, description, *widgets]
        # .input fires on the user's edits only, not when a preset is loaded into the form (which
        # would queue a call per widget). A text box's .input misses text set in one go (pasted,
        # or filled by a test), so leaving the box counts as an edit too.
        edits = [w.input for w in [description, *widgets]]
        edits += [w.blur for w in [description, *widgets] if isinstance(w, gr.Textbox)]
        gr.on(edits, on_edit, form, status, show_progress="hidden", trigger_mode="always_last", **serial)
        action_inputs = [picker, description, new_name, *widgets]
        for button, action in ((save_btn, save), (save_as_btn, save_as), (rename_btn, rename),
                               (delete_btn, delete), (default_btn, make_default)):
            button.click(act(action), action_inputs, editor_outputs, **serial)
        importer.upload(on_import, importer, [importer, *editor_outputs], **serial)
        export_btn.click(on_export, form, exported, **serial)
        # Each page load shows the default preset and the presets as they are now (the CLI or
        # another browser may have changed them).
        gr.on(None, lambda: editor(library.default_name() or library.names()[0]), None, editor_outputs,
              show_progress="hidden")
        # "Share on the Hub" and "Get from the Hub", below the editor; installed presets join the picker at once.
        installed = sharing.build(services)
        installed.then(lambda: (gr.update(choices=preset_choices(library)), own_presets_line(library)), None,
                       [picker, own_md], show_progress="hidden", **serial)
