"""Secrets kept out of logs, reprs, errors and snapshots: URLs, headers, API keys.

Every URL ``streamnb.http`` shows anywhere goes through :func:`redact_url` (query parameters
whose name looks secret - ``api_key``, ``token``, ``sig``... - and any ``user:password@`` part
become ``<redacted>``), every header list through :func:`redact_headers`, and an API key is held
in a :class:`Secret`, whose ``repr`` and ``str`` never show it.

Example::

    >>> redact_url("https://h/v1/feed?api_key=sk-123&n=5")
    'https://h/v1/feed?api_key=<redacted>&n=5'
    >>> redact_headers({"Authorization": "Bearer sk-123", "Accept": "text/event-stream"})
    {'Authorization': '<redacted>', 'Accept': 'text/event-stream'}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "Secret", "is_sensitive", "redact_headers", "redact_url"]

REDACTED = "<redacted>"
_EXACT = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "sig", "signature", "code"}
)
_PARTS = ("token", "key", "secret", "password", "passwd", "auth", "session", "credential")


def is_sensitive(name: str) -> bool:
    """True for a header or query-parameter name that usually carries a secret."""
    k = name.lower()
    return k in _EXACT or any(part in k for part in _PARTS)


def redact_url(url: str) -> str:
    """``url`` with secret-looking query values and any userinfo password replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_sensitive(k) for k, _ in pairs):
            query = urlencode(
                [(k, REDACTED if is_sensitive(k) else v) for k, v in pairs], safe="<>"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """A copy of ``headers`` safe to log (auth, cookies, keys and tokens replaced)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: REDACTED if is_sensitive(k) else v for k, v in items}


class Secret:
    """A string that is never shown: ``repr``/``str`` print ``<redacted>``; ``reveal()`` gives it.

    Example::

        >>> key = Secret("sk-live-123")
        >>> key, f"{key}"
        (Secret(<redacted>), '<redacted>')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself (for the one header that needs it)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled (it would leave the process in clear)")
