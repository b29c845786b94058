"""Fetch a provider's output image safely (docs/providers.md, rules every adapter follows).

Image URLs come from a remote service, so they are treated as untrusted input:
only http(s), at most ``MAX_REDIRECTS`` hops followed by hand with every hop
re-checked, no private/loopback/link-local/reserved/multicast addresses unless
the service opts in, a size cap, the run's deadline checked per chunk, and
magic-byte sniffing so an HTML error page never passes for an image.

The connection is pinned to the address that was checked (the request goes to
the IP, with the original ``Host`` header and TLS server name), so a DNS answer
that changes between the check and the connect cannot reach a private address.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
from typing import TYPE_CHECKING

import httpx

from monitor.enums import Outcome
from probes.answers import read_head
from probes.deadline import exchange
from probes.failure import ProbeFailure

if TYPE_CHECKING:  # pragma: no cover
    from probes.context import ProbeContext

MAX_REDIRECTS = 5
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
# Object stores and CDNs often label images generically; the magic bytes decide then.
GENERIC_CONTENT_TYPES = {"application/octet-stream", "binary/octet-stream"}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def download_image(
    ctx: ProbeContext, url: str, *, allowed_content_types: tuple[str, ...] = ("image/",)
) -> tuple[bytes, str | None]:
    """Return ``(image bytes, MIME type sniffed from them)`` or raise ``ProbeFailure``."""
    with ctx.phase("download"):
        if url.startswith("data:"):
            return _from_data_uri(ctx, url, allowed_content_types)
        current = _parse_url(url)
        for _hop in range(MAX_REDIRECTS + 1):
            answer = _fetch(ctx, current, allowed_content_types)
            if not isinstance(answer, httpx.URL):
                return answer
            current = answer
        raise ProbeFailure(Outcome.BAD_OUTPUT, f"image URL redirected more than {MAX_REDIRECTS} times")


def _parse_url(url: str, base: httpx.URL | None = None) -> httpx.URL:
    try:
        parsed = base.join(url) if base is not None else httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ProbeFailure(Outcome.BAD_OUTPUT, f"invalid image URL {url[:200]!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        what = "redirect target" if base is not None else "image URL"
        raise ProbeFailure(Outcome.BAD_OUTPUT, f"refusing {what} {str(parsed)[:200]!r}: only http and https are allowed")
    return parsed


def _fetch(
    ctx: ProbeContext, url: httpx.URL, allowed_content_types: tuple[str, ...]
) -> tuple[bytes, str | None] | httpx.URL:
    """One hop: the image, or the URL a redirect points to."""
    target, headers, extensions = pinned(ctx, url, "download the image from", Outcome.PROBE_ERROR)
    timeout = ctx.timeout()
    with exchange(ctx, timeout, "image download"), ctx.client.stream(
        "GET", target, headers=headers, extensions=extensions, timeout=timeout, follow_redirects=False
    ) as response:
        status = response.status_code
        if status in REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                raise ProbeFailure(Outcome.BAD_OUTPUT, f"image URL answered HTTP {status} without a Location", http_status=status)
            return _parse_url(location, base=url)
        if 400 <= status < 500:
            raise _refused(ctx, response)
        if status >= 500:
            raise ProbeFailure(Outcome.SERVER_ERROR, f"image download failed: HTTP {status}", http_status=status)
        if status != 200:
            raise ProbeFailure(Outcome.BAD_OUTPUT, f"image download answered HTTP {status}, expected 200", http_status=status)
        _check_content_type(response.headers.get("content-type"), allowed_content_types)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > ctx.service.max_image_bytes:
            raise _too_large(ctx, int(declared))
        body = read_limited(ctx, response, ctx.service.max_image_bytes, what="image (max_image_bytes)")
    return body, sniff_image(body)


#: how much of an error body is read for its ``<Code>`` and ``<Message>``
MAX_ERROR_HEAD = 4096
_XML_CODE = re.compile(r"<Code>\s*([A-Za-z][A-Za-z0-9._-]{0,79})\s*</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{1,400})</Message>")
#: object-store error codes of a signed URL that expired or whose signature no longer holds
SIGNATURE_CODES = frozenset({"AuthenticationFailed", "AccessDenied", "SignatureDoesNotMatch", "ExpiredToken",
                             "AuthorizationFailure", "AuthorizationPermissionMismatch", "InvalidToken", "TokenRefreshRequired"})


def _refused(ctx: ProbeContext, response: httpx.Response) -> ProbeFailure:
    """A 4xx from the URL the provider returned: its output cannot be fetched, so ``bad_output``.

    Our own request is not at fault here (the URL is the provider's, signed by it), so even a 403
    is not ``client_error``: object stores answer an expired or invalid signature with 403 and an XML
    body (Azure ``AuthenticationFailed``, S3 ``AccessDenied``/``Request has expired``), whose code and
    message the reason quotes.  A 429 is the store's rate limit (``rate_limited``).
    """
    status = response.status_code
    code, message = error_fields(read_head(ctx, response, MAX_ERROR_HEAD, "image download error body"))
    said = f" {code}" + (f": {message}" if message else "") if code else ""
    if status == 429:
        return ProbeFailure(Outcome.RATE_LIMITED, f"the image URL the provider returned answered HTTP 429{said}",
                            http_status=status)
    if code in SIGNATURE_CODES or "expired" in message.lower():
        what = "its signed URL expired or its signature is invalid"
    elif status in (404, 410):
        what = "the image is expired or missing"
    else:
        what = "the provider's output could not be fetched"
    return ProbeFailure(Outcome.BAD_OUTPUT, f"the image URL the provider returned answered HTTP {status}{said} ({what})",
                        http_status=status)


def error_fields(head: bytes) -> tuple[str, str]:
    """``(code, message)`` of an object store's XML error body, "" where absent.

    A bounded regex over the first ``MAX_ERROR_HEAD`` bytes, never an XML parser: no entities or
    DTDs are expanded.  The message is cut to its first line (Azure appends RequestId and Time).
    """
    text = head.decode("utf-8", errors="replace")
    code, found = _XML_CODE.search(text), _XML_MESSAGE.search(text)
    lines = found.group(1).strip().splitlines() if found else []
    message = "".join(ch for ch in lines[0] if ch.isprintable()).strip()[:200] if lines else ""
    return (code.group(1) if code else ""), message


def pinned(
    ctx: ProbeContext, url: httpx.URL, doing: str, outcome: Outcome
) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """``(target, headers, extensions)`` reaching ``url`` only at a public address it resolves to.

    The request goes to the checked IP with the original ``Host`` header and TLS server name, so a
    DNS answer that changes between the check and the connect cannot reach a private address.  A
    non-public address is refused as ``outcome`` ("refusing to {doing} {host}"), unless the service
    sets ``allow_private_network``.
    """
    if ctx.service.allow_private_network:
        return url, {}, {}
    address = _checked_address(ctx, url, doing, outcome)
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return url.copy_with(host=str(address)), {"Host": url.netloc.decode("ascii")}, extensions


def _checked_address(
    ctx: ProbeContext, url: httpx.URL, doing: str = "download the image from", outcome: Outcome = Outcome.PROBE_ERROR
) -> IPAddress:
    """Resolve the host; refuse it if any address is not public.  Returns the address to use."""
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve host {host!r}: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not is_public_address(address):
            raise ProbeFailure(
                outcome,
                f"refusing to {doing} {host!r}: it resolves to the non-public address {address}. "
                f"If this service really is on a private network, set "
                f"'allow_private_network: true' on service {ctx.service.id!r}.",
            )
    return addresses[0]


NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address


def is_public_address(address: IPAddress) -> bool:
    """False for private, loopback, link-local, reserved, unspecified and multicast addresses.

    IPv6 addresses that carry an IPv4 address (mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64
    ``64:ff9b::/96``, Teredo) are judged by that IPv4 address too: ``2002:7f00:1::`` reaches 127.0.0.1.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour, address.teredo[1] if address.teredo else None]
        if address in NAT64_PREFIX:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        inner = [a for a in embedded if a is not None]
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if inner:
            return all(is_public_address(a) for a in inner)
    return address.is_global and not address.is_multicast


def _check_content_type(header: str | None, allowed: tuple[str, ...]) -> None:
    media_type = (header or "").split(";")[0].strip().lower()
    if not media_type or media_type in GENERIC_CONTENT_TYPES:
        return
    if not media_type.startswith(allowed):
        raise ProbeFailure(Outcome.BAD_OUTPUT, f"image URL returned {media_type!r}, not an image")


def read_limited(ctx: ProbeContext, response: httpx.Response, limit: int, *, what: str) -> bytes:
    """Read a streamed body, checking the deadline per chunk; over ``limit`` bytes is ``bad_output``."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():  # as received: a chunk size would buffer past the deadline
        ctx.check_deadline(what)
        size += len(chunk)
        if size > limit:
            raise ProbeFailure(Outcome.BAD_OUTPUT, f"{what} is over the {limit}-byte limit", http_status=response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(ctx: ProbeContext, size: int) -> ProbeFailure:
    return ProbeFailure(Outcome.BAD_OUTPUT, f"image is {size} bytes, over max_image_bytes={ctx.service.max_image_bytes}")


def _from_data_uri(ctx: ProbeContext, uri: str, allowed: tuple[str, ...]) -> tuple[bytes, str | None]:
    header, comma, payload = uri.partition(",")
    params = header.removeprefix("data:").split(";")
    media_type = params[0].strip().lower()
    if not comma or "base64" not in params[1:]:
        raise ProbeFailure(Outcome.BAD_OUTPUT, "data: URI is not base64-encoded")
    if not media_type.startswith(allowed):
        raise ProbeFailure(Outcome.BAD_OUTPUT, f"data: URI holds {media_type or 'no type'!r}, not an image")
    if len(payload) * 3 // 4 > ctx.service.max_image_bytes:
        raise _too_large(ctx, len(payload) * 3 // 4)
    body = decode_base64(payload, what="data: URI")
    return body, sniff_image(body)


def decode_base64(text: str, *, what: str) -> bytes:
    """Strict base64 decoding; garbage is the provider's ``bad_output``."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProbeFailure(Outcome.BAD_OUTPUT, f"{what} is not valid base64: {exc}") from None


def sniff_image(data: bytes) -> str:
    """The MIME type from the magic bytes, after a cheap check that the file is complete.

    Full decoding is the scorer's job; this catches non-images (HTML error pages,
    random bytes) and transfers cut short, which are ``bad_output``.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        mime, complete = "image/png", b"IEND" in data[-64:]
    elif data.startswith(b"\xff\xd8\xff"):
        mime, complete = "image/jpeg", b"\xff\xd9" in data[-64:]
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        mime, complete = "image/webp", len(data) >= int.from_bytes(data[4:8], "little") + 8
    elif data.startswith((b"GIF87a", b"GIF89a")):
        mime, complete = "image/gif", b";" in data[-16:]
    else:
        raise ProbeFailure(Outcome.BAD_OUTPUT, f"not a PNG, JPEG, WEBP or GIF image ({len(data)} bytes starting {data[:16]!r})")
    if not complete:
        raise ProbeFailure(Outcome.BAD_OUTPUT, f"{mime} image is truncated ({len(data)} bytes)")
    return mime
