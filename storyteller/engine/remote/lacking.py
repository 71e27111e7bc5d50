"""Which of a request's sampler settings a server cannot apply, named for the user (never dropped silently)."""

from __future__ import annotations

from storyteller.engine.interface import EngineCapabilities
from storyteller.engine.sampling import SamplerSettings

_DEFAULTS = SamplerSettings()
# Fields that are not sampler choices a user makes (the seed is honoured or not per server, never an error).
_NOT_SETTINGS = frozenset({"seed", "samplers"})


def lacking_settings(sampler: SamplerSettings, capabilities: EngineCapabilities) -> list[str]:
    """The fields `sampler` sets away from SamplerSettings' defaults that the engine does not apply."""
    return [name for name in SamplerSettings.model_fields
            if name not in capabilities.sampler_fields and name not in _NOT_SETTINGS
            and getattr(sampler, name) != getattr(_DEFAULTS, name)]


def lacking_notice(server: str, sampler: SamplerSettings, capabilities: EngineCapabilities) -> str | None:
    """One sentence for a reply whose settings the server could not all apply, else None."""
    lacking = lacking_settings(sampler, capabilities)
    if not lacking:
        return None
    return f"{server} has no {', '.join(lacking)}: {'that setting was' if len(lacking) == 1 else 'those were'} not applied."


def unsupported_fields(capabilities: EngineCapabilities) -> list[str]:
    """Every SamplerSettings field the engine cannot apply (the Models tab and `--server` list them)."""
    return [name for name in SamplerSettings.model_fields if name not in capabilities.sampler_fields]
