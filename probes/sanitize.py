"""Redact secrets from provider error text and cap it (docs/contracts.md, result record: ≤ 1 KB)."""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_DETAIL_BYTES = 1024
REDACTED = "[REDACTED]"

_PATTERNS = [
    # Authorization-style values: "Bearer xyz", "Key xyz", "Basic xyz", "Token xyz" (a credential
    # has a digit in it, which keeps prose such as "API key provided" readable)
    re.compile(r"(?i)\b(bearer|key|basic|token)\s+(?=[A-Za-z._~+/=:-]*\d)[A-Za-z0-9._~+/=:-]{8,}"),
    # Well-known key shapes: OpenAI sk-..., Replicate r8_..., Hugging Face hf_..., Google AIza...
    re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|r8_[A-Za-z0-9]{8,}|hf_[A-Za-z0-9]{8,}|AIza[A-Za-z0-9_-]{20,})"),
    # key=value pairs in query strings or text
    re.compile(r"(?i)\b(api[_-]?key|access[_-]?token|token|secret|password|x-key|key)=([^&\s\"']{4,})"),
]


def sanitize(text: str | None, secrets: Iterable[str] = (), limit: int = MAX_DETAIL_BYTES) -> str | None:
    """Return ``text`` with secrets and credential-looking tokens redacted, at most ``limit`` bytes."""
    if text is None:
        return None
    text = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _PATTERNS[1].sub(REDACTED, text)
    text = _PATTERNS[2].sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = " ".join(text.split())  # one line: no control characters reach logs or pages
    encoded = text.encode("utf-8")
    if len(encoded) > limit:
        text = encoded[: limit - 3].decode("utf-8", errors="ignore") + "..."
    return text
