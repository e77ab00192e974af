"""Model resolution: a profile's model string to a concrete PydanticAI model object.

The library never falls back silently: a provider model without its key is a
:class:`ConfigurationError` that names the missing variable. Only the stage scripts choose a
fallback (:func:`choose_model`), and they announce it in one line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from .errors import ConfigurationError

__all__ = [
    "OFFLINE",
    "CountingModel",
    "ModelChoice",
    "choose_model",
    "resolve_model",
]

OFFLINE = "offline"
"""The model string of the deterministic offline stand-in."""

_KEY_VARS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
}


def _split(spec: str) -> tuple[str, str]:
    provider, sep, name = spec.partition(":")
    if not sep or not provider or not name:
        raise ConfigurationError(
            f"model {spec!r} is not of the form 'provider:model-name' "
            f"(e.g. 'openai:gpt-5-nano', 'anthropic:claude-sonnet-4-5') or 'offline'"
        )
    return provider, name


def _missing_key(provider: str, env: Mapping[str, str]) -> str | None:
    """The variable a provider needs that ``env`` lacks, or None."""
    var = _KEY_VARS.get(provider)
    if var is None or env.get(var):
        return None
    # An OpenAI-compatible local server (Ollama, vLLM, llama.cpp) needs no real key.
    if provider == "openai" and env.get("OPENAI_BASE_URL"):
        return None
    return var


def resolve_model(spec: str, *, env: Mapping[str, str] | None = None) -> Model:
    """Turn ``spec`` into a model object, or raise a ConfigurationError that says what to set.

    ``offline`` gives the scripted stand-in (:mod:`agent_harness_platform.offline`).
    ``openai:<name>`` honours ``OPENAI_BASE_URL`` for OpenAI-compatible local servers.
    """
    env = os.environ if env is None else env
    if spec == OFFLINE:
        from .offline import OfflineModel

        return OfflineModel()
    provider, name = _split(spec)
    missing = _missing_key(provider, env)
    if missing is not None:
        raise ConfigurationError(
            f"model {spec!r} needs the environment variable {missing}, which is not set. "
            f"Export {missing}=..., or use model='offline' for the scripted offline model"
            + (
                ", or set OPENAI_BASE_URL for a local OpenAI-compatible server"
                if provider == "openai"
                else ""
            )
        )
    if provider == "openai":
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        base_url = env.get("OPENAI_BASE_URL")
        api_key = env.get("OPENAI_API_KEY") or "not-needed-for-local-server"
        return OpenAIChatModel(name, provider=OpenAIProvider(base_url=base_url, api_key=api_key))
    if provider == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        return AnthropicModel(name, provider=AnthropicProvider(api_key=env["ANTHROPIC_API_KEY"]))
    raise ConfigurationError(
        f"model provider {provider!r} in {spec!r} is not supported; use "
        f"{sorted(_KEY_VARS)} (OpenAI-compatible servers via 'openai:' and OPENAI_BASE_URL) "
        "or 'offline'"
    )


@dataclass(frozen=True)
class ModelChoice:
    """What a stage script runs with, and the one line that tells the user why."""

    spec: str
    announcement: str | None


def choose_model(profile_model: str, *, env: Mapping[str, str] | None = None) -> ModelChoice:
    """The stage scripts' policy: ``AHP_MODEL``, else the profile's model if its key is set,
    else the offline model with a one-line notice saying how to switch.
    """
    env = os.environ if env is None else env
    override = env.get("AHP_MODEL")
    if override:
        return ModelChoice(override, f"[model] using {override} (from AHP_MODEL)")
    if profile_model == OFFLINE:
        return ModelChoice(
            OFFLINE, "[model] using the offline scripted model (profile says 'offline')"
        )
    provider, _ = _split(profile_model)
    missing = _missing_key(provider, env)
    if missing is None:
        return ModelChoice(profile_model, f"[model] using {profile_model}")
    return ModelChoice(
        OFFLINE,
        f"[model] {missing} is not set, so this run uses the offline scripted model (not an LLM); "
        f"export {missing}=... to use {profile_model}, or set AHP_MODEL=provider:model",
    )


class CountingModel(WrapperModel):
    """Counts the requests that reach the wrapped model (cache hits never do).

    The count is the honest measure of what a run paid for. When ``log_path`` is set, each
    request also appends one line to that file, so a process outside the run (a test, a
    benchmark) can count the calls too.
    """

    def __init__(self, wrapped: Model, *, log_path: str | None = None) -> None:
        super().__init__(wrapped)
        self.calls = 0
        self._log_path = log_path

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        self.calls += 1
        if self._log_path:
            with open(self._log_path, "a", encoding="utf-8") as stream:
                stream.write(f"{self.model_name}\n")
        return await super().request(messages, model_settings, model_request_parameters)
