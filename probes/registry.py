"""Adapters by ``provider:`` key.  Adding a provider = its module + one line here."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from pydantic import ValidationError

from monitor.config import Config, ConfigIssue
from monitor.config.loader import pydantic_issues

if TYPE_CHECKING:  # pragma: no cover
    from probes.base import Adapter

# provider key -> "module:Class"; imported lazily so a broken optional adapter cannot break the rest
ADAPTERS: dict[str, str] = {
    "automatic1111": "probes.providers.automatic1111:Automatic1111Adapter",
    "bfl": "probes.providers.bfl:BFLAdapter",
    "comfyui": "probes.providers.comfyui:ComfyUIAdapter",
    "fal": "probes.providers.fal:FalAdapter",
    "gemini": "probes.providers.gemini:GeminiAdapter",
    "http": "probes.providers.http:HTTPAdapter",
    "huggingface": "probes.providers.huggingface:HuggingFaceAdapter",
    "midjourney_proxy": "probes.providers.midjourney_proxy:MidjourneyProxyAdapter",
    "openai": "probes.providers.openai:OpenAIAdapter",
    "replicate": "probes.providers.replicate:ReplicateAdapter",
    "stability": "probes.providers.stability:StabilityAdapter",
}


def provider_keys() -> list[str]:
    return sorted(ADAPTERS)


def adapter_class(provider: str) -> type[Adapter]:
    try:
        target = ADAPTERS[provider]
    except KeyError:
        raise KeyError(f"unknown provider {provider!r} (known: {', '.join(provider_keys())})") from None
    module_name, _, class_name = target.partition(":")
    return getattr(import_module(module_name), class_name)


def provider_issues(config: Config) -> list[ConfigIssue]:
    """The config check that probes own: every service names a known provider with valid options.

    Callers that load a config for probing pass it to ``load_config(..., checks=[provider_issues])``.
    """
    issues: list[ConfigIssue] = []
    for i, service in enumerate(config.services):
        if service.provider not in ADAPTERS:
            known = ", ".join(provider_keys())
            issues.append(ConfigIssue(("services", i, "provider"), f"unknown provider {service.provider!r} (known: {known})"))
            continue
        options_model = adapter_class(service.provider).options_model
        if options_model is None:
            continue
        try:
            options_model.model_validate(service.options)
        except ValidationError as exc:
            for issue in pydantic_issues(exc, service.options):
                issues.append(ConfigIssue(("services", i, "options", *issue.path), issue.message))
    return issues
