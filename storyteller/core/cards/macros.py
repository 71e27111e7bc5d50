"""Card macros: {{char}}, {{user}}, <BOT>, <USER>, {{random}}, {{pick}}, {{roll}}, {{time}}, {{date}}, {{// …}}.

Names match case-insensitively, as the V1 spec asks. Macros this module does not know stay as
written, so a later stage (the prompt builder's {{original}}) can still see them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime

# Comments may span lines and are gone before anything else is looked at.
COMMENT = re.compile(r"\{\{\s*(?://|comment\s*:|hidden_key\s*:).*?\}\}", re.IGNORECASE | re.DOTALL)
NAMES = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(bot|char|user)>", re.IGNORECASE)
FUNCTION = re.compile(r"\{\{\s*(random|pick|roll)\s*:(.*?)\}\}|\{\{\s*(time|date)\s*\}\}", re.IGNORECASE | re.DOTALL)
DICE = re.compile(r"^\s*(\d*)\s*d?\s*(\d+)\s*(?:([+-])\s*(\d+))?\s*$", re.IGNORECASE)
UNESCAPED_COMMA = re.compile(r"(?<!\\),")


@dataclass
class MacroContext:
    char: str
    user: str
    now: datetime = field(default_factory=datetime.now)
    rng: random.Random = field(default_factory=random.Random)
    # {{pick}} chooses the same value for the same text and seed (e.g. a chat's id).
    pick_seed: str = ""


def substitute(text: str, ctx: MacroContext) -> str:
    text = COMMENT.sub("", text)
    text = NAMES.sub(lambda m: ctx.user if (m[1] or m[2]).lower() == "user" else ctx.char, text)
    return FUNCTION.sub(lambda m: _function(m, ctx), text)


def _function(match: re.Match, ctx: MacroContext) -> str:
    name = (match[1] or match[3]).lower()
    if name == "time":
        return ctx.now.strftime("%I:%M %p").lstrip("0")
    if name == "date":
        return f"{ctx.now:%B} {ctx.now.day}, {ctx.now.year}"
    argument = match[2]
    if name == "roll":
        dice = DICE.match(argument)
        if not dice or int(dice[2]) < 1:
            return match[0]
        count, sides = int(dice[1] or 1), int(dice[2])
        total = sum(ctx.rng.randint(1, sides) for _ in range(min(count, 1000)))
        if dice[3]:
            total += int(dice[4]) if dice[3] == "+" else -int(dice[4])
        return str(total)
    options = _options(argument)
    if name == "pick":
        return random.Random(f"{ctx.pick_seed}\x00{match.start()}\x00{argument}").choice(options)
    return ctx.rng.choice(options)


def _options(argument: str) -> list[str]:
    # SillyTavern also writes {{random::a::b}}; the V3 spec writes {{random:a,b}} with \, for a comma.
    if argument.startswith(":"):
        return argument[1:].split("::")
    return [part.replace("\\,", ",") for part in UNESCAPED_COMMA.split(argument)]
