"""What every HTTP Stream shares: the httpx client, the request, statuses and broken connections.

:class:`ClientSpec` says where a run's ``httpx.AsyncClient`` comes from: yours (``client=``,
used as is and never closed by streamnb), or one built per run from ``timeout``, ``verify``
(TLS: ``False``, a CA bundle path or an ``ssl.SSLContext``), ``proxy`` and any other
``httpx.AsyncClient`` keyword in ``client_kwargs`` - closed when the run ends, on every path.

:func:`check_response` turns a status >= 400 into :class:`~streamnb.errors.HttpError` with an
excerpt of the body; :func:`broken` turns an ``httpx.TransportError`` (refused, reset, a body
cut short, a read timeout) into a retryable ``HttpError`` with no status.

Example::

    spec = ClientSpec.build("sse", client=None, timeout=10, verify=False)
    async with spec.open() as client:
        ...
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import ArgumentTypeError, HttpError, InvalidArgumentError
from .redact import REDACTED, is_sensitive, redact_url

__all__ = [
    "BODY_EXCERPT",
    "DEFAULT_TIMEOUT",
    "ClientSpec",
    "RequestSpec",
    "TimeoutLike",
    "broken",
    "check_response",
    "expect_content_type",
    "merge_headers",
    "scrub",
]

#: httpx's timeout for every request unless you pass one: 30 s to connect, read, write.
DEFAULT_TIMEOUT = httpx.Timeout(30.0)
#: Characters of an error response's body kept in ``HttpError.body``.
BODY_EXCERPT = 500

TimeoutLike = float | httpx.Timeout | None


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """Where one run's ``httpx.AsyncClient`` comes from (see the module docstring)."""

    client: httpx.AsyncClient | None
    kwargs: Mapping[str, Any]

    @classmethod
    def build(
        cls,
        method: str,
        *,
        client: httpx.AsyncClient | None,
        timeout: TimeoutLike | httpx.Timeout = DEFAULT_TIMEOUT,
        verify: bool | str | ssl.SSLContext = True,
        proxy: str | httpx.Proxy | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> ClientSpec:
        """Check the options up front and keep them for the runs."""
        if client is not None:
            if not isinstance(client, httpx.AsyncClient):
                raise ArgumentTypeError(
                    f"{method}(client={type(client).__name__}): expected an httpx.AsyncClient"
                )
            given = [
                name
                for name, value, default in (
                    ("timeout", timeout, DEFAULT_TIMEOUT),
                    ("verify", verify, True),
                    ("proxy", proxy, None),
                    ("client_kwargs", client_kwargs, None),
                )
                if value is not default and value != default
            ]
            if given:
                raise InvalidArgumentError(
                    f"{method}(client=..., {', '.join(given)}=...): these belong to the "
                    "httpx.AsyncClient you pass; set them when you create it"
                )
            return cls(client, {})
        if timeout is not None and not isinstance(timeout, int | float | httpx.Timeout):
            raise ArgumentTypeError(
                f"{method}(timeout={timeout!r}): expected seconds, an httpx.Timeout or None"
            )
        if isinstance(timeout, bool):
            raise ArgumentTypeError(f"{method}(timeout={timeout!r}): expected seconds")
        if isinstance(timeout, int | float) and not timeout > 0:
            raise InvalidArgumentError(f"{method}(timeout={timeout!r}): must be > 0 seconds")
        kwargs: dict[str, Any] = dict(client_kwargs or {})
        kwargs.setdefault("timeout", timeout)
        kwargs.setdefault("verify", verify)
        if proxy is not None:
            kwargs.setdefault("proxy", proxy)
        return cls(None, kwargs)

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[httpx.AsyncClient]:
        """The client of one run: yours untouched, or a new one closed on exit."""
        if self.client is not None:
            yield self.client
            return
        async with httpx.AsyncClient(**self.kwargs) as client:
            yield client


def merge_headers(
    method: str, base: Mapping[str, str] | Iterable[tuple[str, str]] | None
) -> dict[str, str]:
    """``headers=`` as a dict of str, checked up front."""
    if base is None:
        return {}
    items = base.items() if isinstance(base, Mapping) else base
    out: dict[str, str] = {}
    for item in items:
        try:
            key, value = item
        except (TypeError, ValueError):
            raise ArgumentTypeError(
                f"{method}(headers=...): expected a mapping or (name, value) pairs, got {item!r}"
            ) from None
        if not isinstance(key, str) or not isinstance(value, str):
            raise ArgumentTypeError(
                f"{method}(headers=...): header names and values must be str, got "
                f"{type(key).__name__}: {type(value).__name__} for {key!r}"
            )
        out[key] = value
    return out


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``<redacted>``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


async def check_response(
    response: httpx.Response,
    url: str,
    method: str,
    received: int,
    secrets: Iterable[str] = (),
) -> None:
    """Raise HttpError for a status >= 400, with an excerpt of the body (secrets scrubbed)."""
    status = response.status_code
    if status < 400:
        return
    body = b""
    with contextlib.suppress(httpx.HTTPError):
        async for part in response.aiter_bytes():
            body += part
            if len(body) >= BODY_EXCERPT * 4:
                break
    excerpt = scrub(body.decode("utf-8", "replace")[:BODY_EXCERPT], secrets)
    raise HttpError(
        url, status, excerpt, reason=response.reason_phrase, method=method, received=received
    )


def broken(exc: httpx.TransportError | OSError, url: str, method: str, received: int) -> HttpError:
    """A retryable HttpError (no status) for a connection that failed or broke."""
    err = HttpError(
        url,
        None,
        reason=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        method=method,
        received=received,
    )
    return err


def expect_content_type(
    response: httpx.Response, wanted: tuple[str, ...], url: str, method: str
) -> None:
    """Raise HttpError when the response is not one of the ``wanted`` media types."""
    got = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if not any(w in got for w in wanted):
        raise HttpError(
            url,
            response.status_code,
            reason=f"expected content-type {' or '.join(wanted)}, got {got or 'none'!r}",
            method=method,
        )


class RequestSpec:
    """The request of an HTTP Stream, checked once, sent once per iteration (or attempt)."""

    __slots__ = ("body", "headers", "method", "params", "secrets", "shown", "url")

    def __init__(
        self,
        fn: str,
        url: Any,
        method: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
        json_body: Any,
        content: bytes | str | None,
    ) -> None:
        if not isinstance(url, str | httpx.URL):
            raise ArgumentTypeError(f"{fn}(url={url!r}): expected a str or httpx.URL")
        parsed = httpx.URL(str(url))
        if parsed.scheme not in ("http", "https"):
            raise InvalidArgumentError(
                f"{fn}(url={redact_url(str(url))!r}): expected an http:// or https:// URL"
            )
        if not isinstance(method, str) or not method.isalpha():
            raise InvalidArgumentError(f"{fn}(method={method!r}): expected an HTTP method")
        if json_body is not None and content is not None:
            raise InvalidArgumentError(f"{fn}(json=..., content=...): pass one body, not both")
        if params is not None and not isinstance(params, Mapping):
            raise ArgumentTypeError(f"{fn}(params=...): expected a mapping")
        self.url = str(url)
        self.method = method.upper()
        self.params = dict(params or {})
        self.headers = merge_headers(fn, headers)
        self.body: dict[str, Any] = {}
        if json_body is not None:
            self.body["json"] = json_body
        elif content is not None:
            self.body["content"] = content
        full = parsed.copy_merge_params(self.params) if self.params else parsed
        self.shown = redact_url(str(full))
        self.secrets = tuple(v for k, v in self.headers.items() if is_sensitive(k))
        self.secrets += tuple(str(v) for k, v in self.params.items() if is_sensitive(k))

    def send(self, client: httpx.AsyncClient, extra: Mapping[str, str] | None = None) -> Any:
        """``client.stream(...)`` for this request (an async context manager)."""
        headers = {**self.headers, **extra} if extra else self.headers
        return client.stream(
            self.method, self.url, params=self.params or None, headers=headers, **self.body
        )
