"""Backend URLs in logs and errors: never with their secrets.

``redact(url)`` is the URL to show; ``scrub(text, url)`` removes ``url``'s secrets from a
message that may quote them (a driver's error, say).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

__all__ = ["redact", "scrub", "secrets"]

_SECRET_PARAMS = frozenset({"password", "passwd", "token", "secret", "sslpassword"})
_MASK = "***"
_UNPARSABLE = "<unparsable URL>"


def redact(url: str) -> str:
    """``url`` with its password (and any secret query parameter) replaced by ``***``.

    A URL that does not parse is shown as ``<unparsable URL>``. Without a user part,
    a "port" that is not a number is masked too: ``postgresql://app:s3cret/db`` (the
    ``@host`` forgotten) parses as host ``app`` and port ``s3cret``.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return _UNPARSABLE
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{_MASK}@{hostinfo}"
    elif "@" not in netloc:
        port = _bad_port(netloc)
        if port is not None:
            netloc = netloc[: -len(port)] + _MASK
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_PARAMS for key, _ in pairs):
            query = urlencode(
                [(k, _MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    # Rebuilt by hand: urlunsplit would drop the empty authority of sqlite:///file.db.
    start = url.index("//") + 2 if parts.netloc else 0
    end = start + len(parts.netloc)
    rest = url[end:]
    if query != parts.query:
        path, _, tail = rest.partition("?")
        fragment = tail.partition("#")[2]
        rest = f"{path}?{query}" + (f"#{fragment}" if "#" in tail else "")
    return url[:start] + netloc + rest


def secrets(url: str) -> list[str]:
    """The secret parts of ``url`` as they may be quoted: the password (as written and
    decoded), secret query parameters' values, and a "port" that is not a number."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found: list[str] = []
    if password is not None:
        found += [password, unquote(password)]
    elif "@" not in parts.netloc:
        port = _bad_port(parts.netloc)
        if port is not None:
            found += [port, unquote(port)]
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _SECRET_PARAMS:
            found.append(value)
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with ``url`` shown redacted and every secret of it replaced by ``***``."""
    if url and url in text:
        text = text.replace(url, redact(url))
    for secret in secrets(url):
        text = text.replace(secret, _MASK)
    return text


def _bad_port(netloc: str) -> str | None:
    """The text after the host's last ``:`` when it is not a port number."""
    if netloc.endswith("]") or ":" not in netloc:
        return None  # an IPv6 address without a port, or no port at all
    port = netloc.rpartition(":")[2]
    return None if port.isdigit() or not port else port
