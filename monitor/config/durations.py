"""Durations as written in the config: ``500ms``, ``30s``, ``5m``, ``1h``, ``1h30m``, ``2d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> timedelta:
    """Parse a duration; a bare number means seconds.  Raises ``ValueError`` with the bad text."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return timedelta(seconds=value)
    text = str(value).strip().lower()
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {str(value)!r} (use e.g. 30s, 5m, 1h)")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """The shortest config-style spelling of ``delta``."""
    seconds = delta.total_seconds()
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    return "".join(parts) or "0s"


#: A pydantic field type for durations written as in the config ("30s", "5m"), printed back the same way.
Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
