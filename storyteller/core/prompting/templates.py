"""Instruct templates: how a conversation becomes prompt text for a given model family.

Built-in templates are JSON data files (`instruct_templates/*.json`, ids as the model catalog uses
them); users add their own as JSON files in `<data>/templates/`, or import SillyTavern's instruct
JSON. `embedded` renders the GGUF's own `tokenizer.chat_template` in jinja2's sandbox.

Every template renders to a list of `Piece`s: template text (special tokens allowed) and message
content (never parsed for special tokens), each content piece tagged with its message index, so the
prompt builder can resend a generated reply as its exact token ids and count tokens per part.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storyteller.core.errors import UserError
from storyteller.engine import Segment

Role = Literal["system", "user", "assistant"]
TEMPLATE_IDS = ["alpaca", "chatml", "mistral-v1", "mistral-v2v3", "llama3", "gemma", "vicuna", "metharme", "embedded"]
DEFAULT_TEMPLATE_ID = "alpaca"


class TemplateImportError(UserError, ValueError):
    """A template file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    token_ids: tuple[int, ...] | None = None  # the exact sampled ids of a generated reply


@dataclass(frozen=True)
class Piece:
    segment: Segment
    message_index: int | None  # None: template text between messages


def _template(text: str) -> Piece:
    return Piece(Segment(text, "template"), None)


def _content(message: ChatMessage, index: int) -> Piece:
    ids = list(message.token_ids) if message.token_ids is not None else None
    return Piece(Segment(message.content, "content", ids), index)


class InstructTemplate(BaseModel):
    """Prefix/suffix text around each role's turn; the built-in formats are all of this kind."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str
    system_prefix: str = ""
    system_suffix: str = ""
    user_prefix: str = ""
    user_suffix: str = ""
    assistant_prefix: str = ""
    assistant_suffix: str = ""
    stop: list[str] = Field(default_factory=list)
    # False: the model has no system turn (Mistral, Gemma); system text joins the nearest user turn.
    system_role: bool = True
    notice: str | None = None  # set when this template stands in for an unusable embedded one

    def render(self, messages: list[ChatMessage], next_role: Role | None, open_last: bool = False) -> list[Piece]:
        """The conversation, then the opening of `next_role`'s turn (None: no new turn).

        open_last leaves the last message without its closing text, so the model continues it.
        """
        turns = list(enumerate(messages)) if self.system_role else _merge_system_into_user(messages)
        pieces: list[Piece] = []
        for i, (index, message) in enumerate(turns):
            prefix, suffix = self._affixes(message.role)
            if prefix:
                pieces.append(_template(prefix))
            pieces.extend(_content_pieces(message, index))
            last = i == len(turns) - 1
            if suffix and not (last and open_last):
                pieces.append(_template(suffix))
        if next_role is not None:
            prefix = self._affixes(next_role)[0]
            if prefix:
                pieces.append(_template(prefix))
        return pieces

    def stop_strings(self, user_name: str) -> list[str]:
        """The template's own stops, plus the model starting to write the user's turn."""
        stops = [*self.stop, f"\n{user_name}:"]
        if self.user_prefix.strip():
            stops.append(self.user_prefix.strip())
        return list(dict.fromkeys(s for s in stops if s))

    def _affixes(self, role: Role) -> tuple[str, str]:
        return {
            "system": (self.system_prefix, self.system_suffix),
            "user": (self.user_prefix, self.user_suffix),
            "assistant": (self.assistant_prefix, self.assistant_suffix),
        }[role]


@dataclass(frozen=True)
class _Merged:
    """A user turn that carries system text merged into it (for templates without a system turn)."""

    role: Role
    parts: tuple[tuple[int, ChatMessage], ...]


def _merge_system_into_user(messages: list[ChatMessage]) -> list[tuple[int | None, ChatMessage | _Merged]]:
    """System messages join the next user turn (or the last one, if none follows), as its first text.

    System text before a conversation that opens with the character's greeting becomes a user turn
    of its own, so the roles still alternate user/assistant.
    """
    pending: list[tuple[int, ChatMessage]] = []
    turns: list[tuple[int | None, ChatMessage | _Merged]] = []
    for index, message in enumerate(messages):
        if message.role == "system":
            pending.append((index, message))
        elif message.role == "assistant" and pending and not turns:
            turns.append((None, _Merged("user", tuple(pending))))
            pending = []
            turns.append((index, message))
        elif message.role == "user" and pending:
            turns.append((None, _Merged("user", (*pending, (index, message)))))
            pending = []
        else:
            turns.append((index, message))
    if pending:
        for position in range(len(turns) - 1, -1, -1):
            index, turn = turns[position]
            if turn.role == "user":
                parts = turn.parts if isinstance(turn, _Merged) else ((index, turn),)
                turns[position] = (None, _Merged("user", (*parts, *pending)))
                break
        else:
            turns.insert(0, (None, _Merged("user", tuple(pending))))
    return turns


SYSTEM_JOIN = "\n\n"


def _content_pieces(message: ChatMessage | _Merged, index: int | None) -> list[Piece]:
    if not isinstance(message, _Merged):
        return [_content(message, index)]
    pieces: list[Piece] = []
    for n, (part_index, part) in enumerate(message.parts):
        if n:
            pieces.append(_template(SYSTEM_JOIN))
        pieces.append(_content(part, part_index))
    return pieces


# --- the model's embedded chat template --------------------------------------------------------

_SENTINEL = "\u2063STORYTELLER{}\u2063"
_SENTINEL_RE = re.compile("\u2063STORYTELLER(\\d+)\u2063")
_PROBE = [
    ChatMessage("system", "S"),
    ChatMessage("user", "U1"),
    ChatMessage("assistant", "A1"),
    ChatMessage("user", "U2"),
    ChatMessage("assistant", "A2"),
]


# A GGUF's chat template is a stranger's code: rendered text beyond this, or a `*`/`**` making more, is refused.
MAX_RENDERED_CHARS = 1 << 20


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """jinja2's sandbox blocks unsafe attributes but not `'x' * 10**10` (10 GB) or `9 ** 9 ** 9`."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise SecurityError(f"the chat template raises a number to the power {right}")
        if operator == "*":
            sizes = [len(v) for v in (left, right) if isinstance(v, (str, list, tuple))]
            counts = [v for v in (left, right) if isinstance(v, int)]
            if sizes and counts and sizes[0] * counts[0] > MAX_RENDERED_CHARS:
                raise SecurityError("the chat template repeats text past the size a prompt may have")
        return super().call_binop(context, operator, left, right)


def _template_failure(exc: Exception) -> TemplateError:
    """Any error of a stranger's template (1/0, 'a' + 1, deep nesting) as the TemplateError callers handle."""
    return exc if isinstance(exc, TemplateError) else TemplateError(f"{type(exc).__name__}: {exc}")


class EmbeddedTemplate:
    """Renders the GGUF's jinja chat template; message contents are stitched in as content pieces."""

    id = "embedded"
    name = "Model's embedded template"
    notice = None

    def __init__(self, source: str, bos_text: str | None, eos_text: str | None, stop: list[str]):
        self.source = source
        self.bos_text, self.eos_text = bos_text or "", eos_text or ""
        self.stop = stop
        env = _BoundedSandbox(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_exception
        try:
            self._jinja = env.from_string(source)
        except Exception as exc:  # noqa: BLE001 - see _template_failure
            raise _template_failure(exc) from exc
        self.merge_system = not self._accepts_system()

    def _render_text(self, messages: list[dict], add_generation_prompt: bool) -> str:
        chunks, size = [], 0
        try:
            for chunk in self._jinja.generate(
                messages=messages, add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_text, eos_token=self.eos_text,
            ):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_RENDERED_CHARS:
                    raise SecurityError(f"the chat template writes more than {MAX_RENDERED_CHARS} characters")
        except Exception as exc:  # noqa: BLE001 - see _template_failure
            raise _template_failure(exc) from exc
        return "".join(chunks)

    def _accepts_system(self) -> bool:
        try:
            self._render_text([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], True)
            return True
        except TemplateError:
            return False

    def render(self, messages: list[ChatMessage], next_role: Role | None, open_last: bool = False) -> list[Piece]:
        turns = _merge_system_into_user(messages) if self.merge_system else list(enumerate(messages))
        dicts, owners = [], []
        for index, turn in turns:
            parts = turn.parts if isinstance(turn, _Merged) else ((index, turn),)
            text = SYSTEM_JOIN.join(_SENTINEL.format(len(owners) + n) for n in range(len(parts)))
            owners.extend(parts)
            dicts.append({"role": turn.role, "content": text})
        cut_at_last_content = open_last
        if next_role == "user":
            dicts.append({"role": "user", "content": _SENTINEL.format(len(owners))})
            cut_at_last_content = True
        rendered = self._render_text(dicts, add_generation_prompt=next_role == "assistant")
        return self._split(rendered, owners, cut_at_last_content)

    def _split(self, rendered: str, owners: list[tuple[int, ChatMessage]], cut_at_last_content: bool) -> list[Piece]:
        pieces: list[Piece] = []
        position = 0
        for match in _SENTINEL_RE.finditer(rendered):
            if match.start() > position:
                pieces.append(_template(rendered[position : match.start()]))
            number = int(match[1])
            if number < len(owners):
                pieces.append(_content(owners[number][1], owners[number][0]))
            position = match.end()
        if not cut_at_last_content and position < len(rendered):
            pieces.append(_template(rendered[position:]))
        return pieces

    def stop_strings(self, user_name: str) -> list[str]:
        return list(dict.fromkeys([*self.stop, f"\n{user_name}:"]))

    def is_prefix_stable(self) -> bool:
        """Whether rendering n messages is always a prefix of rendering n+1 (needed for KV reuse)."""
        try:
            renders = [
                "".join(p.segment.text for p in self.render(_PROBE[: n + 1], None))
                for n in range(1, len(_PROBE))
            ]
        except TemplateError:
            return False
        return all(b.startswith(a) for a, b in zip(renders, renders[1:]))


def _raise_exception(message: str):
    raise TemplateError(message)


# --- loading and choosing -----------------------------------------------------------------------

def builtin_templates() -> dict[str, InstructTemplate]:
    directory = resources.files("storyteller.core.prompting") / "instruct_templates"
    templates = {}
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            template = InstructTemplate.model_validate_json(entry.read_text(encoding="utf-8"))
            templates[template.id] = template
    return templates


def user_templates(directory: Path) -> dict[str, InstructTemplate]:
    """The user's own template files; a broken file is skipped here (import reports problems)."""
    templates = {}
    if directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            try:
                template = InstructTemplate.model_validate_json(path.read_text(encoding="utf-8"))
            except (ValidationError, OSError, UnicodeDecodeError):
                continue
            templates[template.id] = template
    return templates


def available_templates(data_dir: Path) -> dict[str, InstructTemplate]:
    """The built-in templates and the user's own (`<data>/templates/`), which win on the same id."""
    return {**builtin_templates(), **user_templates(data_dir / "templates")}


def equivalent_builtin(chat_template: str) -> str:
    """The built-in template that writes what an embedded jinja template writes, by its markers."""
    markers = [
        ("<|im_start|>", "chatml"),
        ("<|start_header_id|>", "llama3"),
        ("<start_of_turn>", "gemma"),
        ("[/INST]", "mistral-v2v3"),
        ("<|model|>", "metharme"),
        ("ASSISTANT:", "vicuna"),
    ]
    for marker, template_id in markers:
        if marker in chat_template:
            return template_id
    return DEFAULT_TEMPLATE_ID


def choose_template(
    requested: str | None,
    catalog_format: str | None,
    chat_template: str | None,
    bos_text: str | None,
    eos_text: str | None,
    available: dict[str, InstructTemplate],
) -> InstructTemplate | EmbeddedTemplate:
    """The chat's own choice, else the catalog's format, else the model's embedded template, else Alpaca.

    An embedded template that fails to render, or whose rendering of n messages is not a prefix of
    the rendering of n+1 (it moves the system prompt, say), is replaced by its built-in equivalent,
    with a notice saying so.
    """
    wanted = requested or catalog_format or ("embedded" if chat_template else DEFAULT_TEMPLATE_ID)
    if wanted != "embedded":
        return available.get(wanted) or available[DEFAULT_TEMPLATE_ID]
    if chat_template:
        stop = available[equivalent_builtin(chat_template)].stop
        try:
            embedded = EmbeddedTemplate(chat_template, bos_text, eos_text, stop)
        except TemplateError as exc:
            fallback = available[equivalent_builtin(chat_template)]
            return fallback.model_copy(
                update={"notice": f"The model's chat template cannot be rendered ({exc}); using {fallback.name} instead."}
            )
        if embedded.is_prefix_stable():
            return embedded
        return builtin_fallback(embedded, "rewrites earlier turns as the chat grows, which would defeat prompt caching", available)
    return available[DEFAULT_TEMPLATE_ID]


def builtin_fallback(template: EmbeddedTemplate, reason: str, available: dict[str, InstructTemplate]) -> InstructTemplate:
    """The built-in twin of an embedded template that failed on this conversation, with a notice."""
    fallback = available[equivalent_builtin(template.source)]
    return fallback.model_copy(update={"notice": f"The model's chat template {reason}; using {fallback.name} instead."})


def import_sillytavern_template(path: Path, template_id: str | None = None) -> InstructTemplate:
    """Maps SillyTavern's instruct-template JSON (input_sequence, output_sequence, …) to ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TemplateImportError(f"{path.name}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict) or "input_sequence" not in data or "output_sequence" not in data:
        raise TemplateImportError(f"{path.name}: not a SillyTavern instruct template (no input_sequence/output_sequence)")
    name = str(data.get("name") or path.stem)
    wrap = "\n" if data.get("wrap", True) else ""
    system_sequence = str(data.get("system_sequence", "") or "")
    template = {
        "id": template_id or re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-") or "imported",
        "name": name,
        "system_prefix": system_sequence + (wrap if system_sequence else ""),
        "system_suffix": str(data.get("system_suffix", "") or "") + wrap,
        "user_prefix": str(data["input_sequence"]) + (wrap if data["input_sequence"] else ""),
        "user_suffix": str(data.get("input_suffix", "") or "") + wrap,
        "assistant_prefix": str(data["output_sequence"]) + (wrap if data["output_sequence"] else ""),
        "assistant_suffix": str(data.get("output_suffix", "") or "") + wrap,
        "stop": [s for s in [str(data.get("stop_sequence", "") or "")] if s],
        "system_role": not data.get("system_same_as_user", False),
    }
    try:
        return InstructTemplate.model_validate(template)
    except ValidationError as exc:
        raise TemplateImportError(f"{path.name}: {exc.errors()[0]['msg']}") from exc
