"""Starter configs with one service per emulated provider (``genstatus init --example all``, the demo).

The providers are whatever ``probes.emulator.server.EMULATORS`` lists, each service set up
with its emulator module's ``SERVICE_DEFAULTS``; the text is YAML with comments, checked
with ``parse_config`` before it is handed out.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import yaml

from monitor.config import Config, parse_config
from probes.registry import provider_issues

EMULATOR_URL = "http://127.0.0.1:8765"  # `genstatus emulator`'s default address
#: what ``init --example all`` writes: one variable moves every service to another emulator port
EMULATOR_ADDRESS = f"${{GENSTATUS_EMULATOR:-{EMULATOR_URL}}}"
EMULATOR_KEY = "emulator-key"  # the emulators accept any well-formed key

#: provider -> (display name, environment variable conventionally holding its key)
PROVIDER_NOTES: dict[str, tuple[str, str | None]] = {
    "automatic1111": ("AUTOMATIC1111", None),
    "bfl": ("Black Forest Labs", "BFL_API_KEY"),
    "comfyui": ("ComfyUI", None),
    "fal": ("fal.ai", "FAL_KEY"),
    "gemini": ("Google Gemini", "GEMINI_API_KEY"),
    "http": ("Custom generator", "GENERATOR_API_KEY"),
    "huggingface": ("Hugging Face", "HF_TOKEN"),
    "midjourney_proxy": ("Midjourney (proxy)", "MJ_API_SECRET"),
    "openai": ("OpenAI", "OPENAI_API_KEY"),
    "replicate": ("Replicate", "REPLICATE_API_TOKEN"),
    "stability": ("Stability AI", "STABILITY_API_KEY"),
}

HEADER = """\
# genstatus configuration — written by `genstatus init --example all`.
#
# One service per provider genstatus can emulate, all pointing at the emulator:
#   genstatus emulator            # terminal 1: serves every emulated provider on 127.0.0.1:8765
#   genstatus run                 # terminal 2: probes them and serves the status page on :8080
# The emulator's address comes from GENSTATUS_EMULATOR (default http://127.0.0.1:8765), e.g.
#   genstatus emulator --port 9000  and  GENSTATUS_EMULATOR=http://127.0.0.1:9000 genstatus run
# Break one on purpose:  curl -X POST 'http://127.0.0.1:8765/_faults/openai?fault=server_error'
# The emulated services cost nothing (cost_per_image defaults to 0), so they probe at the written interval.
# To watch a real provider, change base_url and api_key as its comment says (keys come from
# the environment: ${{VAR}} is replaced, never write keys into this file), set its price as
# cost_per_image (and a monthly_budget if you like) and remove allow_private_network.
#
# Durations: 500ms, 30s, 5m, 1h.  Unknown keys are errors, so typos never pass silently.

site:
  title: {title}
  timezone: UTC

database: {database}
region: {region}

canaries:
  - id: still-life
    prompt: "a red apple on a wooden table, soft daylight, photograph"
    size: 1024x1024
    seed: 1234

services:
"""


def emulated_providers() -> list[str]:
    from probes.emulator.registry import EMULATORS

    return sorted(EMULATORS)


def example_config(
    emulator_url: str = EMULATOR_ADDRESS,
    *,
    per_service: bool = False,
    interval: str = "1m",
    timeout: str = "60s",
    latency_threshold: str | None = None,
    database: str = "sqlite:///genstatus.db",
    title: str = "Imaging Status (emulated providers)",
    region: str = "local",
) -> str:
    """The config text; ``per_service`` addresses each service as ``/s/<service>/<provider>`` so
    faults (and scenario events) can target one service.  ``emulator_url`` may be a ``${VAR:-default}``."""
    parts = [HEADER.format(title=_scalar(title), database=_scalar(database), region=_scalar(region))]
    for provider in emulated_providers():
        parts.append(_service(provider, emulator_url, per_service, interval, timeout, latency_threshold))
    text = "".join(parts)
    parse_config(text, "example.yaml", env={}, checks=[provider_issues])  # a broken example is a bug here, not the user's problem
    return text


def example(emulator_url: str = EMULATOR_ADDRESS, **kwargs: Any) -> Config:
    return parse_config(example_config(emulator_url, **kwargs), "example.yaml", env={}, checks=[provider_issues])


def _service(
    provider: str, emulator_url: str, per_service: bool, interval: str, timeout: str, latency_threshold: str | None
) -> str:
    from probes.emulator.registry import EMULATORS
    from probes.registry import ADAPTERS

    emulator_module, _, emulator_class = EMULATORS[provider].partition(":")
    module = import_module(emulator_module)
    base_path = getattr(module, emulator_class).BASE_PATH
    defaults = dict(getattr(module, "SERVICE_DEFAULTS", {}))
    name, key_variable = PROVIDER_NOTES.get(provider, (provider, f"{provider.upper()}_API_KEY"))
    service_id = provider.replace("_", "-")
    scope = f"/s/{service_id}" if per_service else ""
    real_url = getattr(import_module(ADAPTERS[provider].partition(":")[0]), "DEFAULT_BASE_URL", None)
    real = f"real service: base_url: {real_url or '<your server address>'}"
    if key_variable:
        real += f", api_key: ${{{key_variable}}}"
    fields: dict[str, Any] = {
        "name": f"{name} (emulated)",
        "group": name,
        "provider": provider,
        "base_url": f"{emulator_url}{scope}/{provider}{base_path}",
        "api_key": defaults.pop("api_key", EMULATOR_KEY),
        **defaults,
        "canaries": ["still-life"],
        "interval": interval,
        "timeout": timeout,
        "allow_private_network": True,
    }
    if latency_threshold:
        fields["latency_threshold"] = latency_threshold
    lines = [f"  - id: {service_id}\n", f"    # {real}\n"]
    for key, value in fields.items():
        dumped = yaml.dump({key: value}, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                           width=100)
        lines += [f"    {line}\n" for line in dumped.splitlines()]
    return "".join(lines) + "\n"


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of plain values: ``[a, b]`` reads better in a config."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(not isinstance(item, (dict, list)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def _scalar(value: str) -> str:
    return yaml.safe_dump(value, default_style='"', width=1000).splitlines()[0]
