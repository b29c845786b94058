"""Password hashes for admin users: scrypt (memory-hard, in the standard library), self-describing.

A stored hash reads ``scrypt$n=16384,r=8,p=5$<salt>$<key>`` (salt and key in unpadded base64), so
the cost can be raised later without breaking the hashes already stored.  The defaults are one of
OWASP's equivalent scrypt settings (16 MiB, about 0.2 s on a small server).  No Flask here: the
command line (``genstatus user add``) imports this module too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading

SCHEME = "scrypt"
N, R, P = 2**14, 8, 5
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 10
MAX_LENGTH = 1024  # longer input is refused before hashing: no work for nonsense
#: at most this many hashes are computed at once (each takes ``128 * n * r`` bytes of memory)
CONCURRENT = 2
#: stored parameters above these are refused (a damaged or hostile row must not exhaust memory)
MAX_N, MAX_R, MAX_P = 2**20, 32, 16

_slots = threading.BoundedSemaphore(CONCURRENT)


class WeakPassword(ValueError):
    """A password the admin side does not accept (too short, too long, blank)."""


def check_strength(password: str) -> None:
    if not password.strip():
        raise WeakPassword("the password is empty")
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password is shorter than {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password is longer than {MAX_LENGTH} characters")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    with _slots:
        return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                              maxmem=256 * n * r + 2**20)


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """A new hash with a fresh random salt and its parameters in the string."""
    salt = os.urandom(SALT_BYTES)
    key = _derive(password, salt, n, r, p, KEY_BYTES)
    return f"{SCHEME}$n={n},r={r},p={p}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    try:
        scheme, params, salt, key = stored.split("$")
        values = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        salt_bytes, key_bytes = _unb64(salt), _unb64(key)
    except (ValueError, KeyError):
        return None
    if scheme != SCHEME or not (1 < n <= MAX_N and n & (n - 1) == 0 and 0 < r <= MAX_R and 0 < p <= MAX_P):
        return None
    if not salt_bytes or not 16 <= len(key_bytes) <= 64:
        return None
    return n, r, p, salt_bytes, key_bytes


def verify_password(password: str, stored: str) -> bool:
    """Does ``password`` match ``stored``?  Compared in constant time; a malformed hash never matches."""
    parsed = _parse(stored)
    if parsed is None or len(password) > MAX_LENGTH:
        return False
    n, r, p, salt, key = parsed
    return hmac.compare_digest(_derive(password, salt, n, r, p, len(key)), key)


#: verified against when the user name is unknown, so an unknown name takes as long as a wrong password
DUMMY_HASH = f"{SCHEME}$n={N},r={R},p={P}${_b64(bytes(SALT_BYTES))}${_b64(bytes(KEY_BYTES))}"
