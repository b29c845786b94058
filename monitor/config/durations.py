"""Durations as written in the config: ``500ms``, ``30s``, ``5m``, ``1h``, ``1h30m``, ``2d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = timedelta(days=3650)  # ten years: longer is a typo, and would overflow the scheduler's clock
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> timedelta:
    """Parse a duration; a bare number means seconds.  Raises ``ValueError`` with the bad text."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        if value != value or value < 0:  # NaN, negative
            raise ValueError(f"invalid duration {_shown(value)}: must be a number of seconds, 0 or more")
        return _bounded(value, value)  # compared as it is: a 400-digit integer does not fit a float
    text = str(value).strip().lower()
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {_shown(str(value))} (use e.g. 30s, 5m, 1h)")
    return _bounded(total, value)


def _bounded(seconds: float, written: object) -> timedelta:
    if not seconds <= MAX_DURATION.total_seconds():  # also catches infinity
        raise ValueError(f"duration {_shown(str(written))} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def _shown(value: object) -> str:
    """``repr`` cut short: a duration of 5000 digits is quoted in the error, not echoed whole."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...{text[-6:]}"


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
