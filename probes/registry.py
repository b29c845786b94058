"""Adapters by ``provider:`` key.  Adding a provider = its module + one line here."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from probes.base import Adapter

# provider key -> "module:Class"; imported lazily so a broken optional adapter cannot break the rest
ADAPTERS: dict[str, str] = {
    "openai": "probes.providers.openai:OpenAIAdapter",
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
