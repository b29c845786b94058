"""Adapters by ``provider:`` key.  Adding a provider = its module + one line here."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

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


def adapter_class(provider: str) -> "type[Adapter]":
    try:
        target = ADAPTERS[provider]
    except KeyError:
        raise KeyError(f"unknown provider {provider!r} (known: {', '.join(provider_keys())})") from None
    module_name, _, class_name = target.partition(":")
    return getattr(import_module(module_name), class_name)
