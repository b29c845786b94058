"""Answer helpers every provider emulator shares: JSON bodies (whole or cut short) and fault tests."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Response

from probes.emulator.faults import Fault


def json_response(
    payload: Any,
    status: int = 200,
    *,
    malformed: bool = False,
    headers: dict[str, str] | None = None,
    mimetype: str = "application/json",
    ensure_ascii: bool = True,
) -> Response:
    """``payload`` as JSON; ``malformed`` cuts it in half (the ``malformed_json`` fault)."""
    text = json.dumps(payload, ensure_ascii=ensure_ascii)
    if malformed:
        text = text[: len(text) // 2]
    return Response(text, status=status, mimetype=mimetype, headers=headers)


def is_fault(fault: Fault | None, name: str) -> bool:
    return fault is not None and fault.name == name
