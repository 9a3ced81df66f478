"""Errors of the gRPC adapter: failed calls, undecodable messages, unencodable requests.

:class:`RpcError` wraps a ``grpc.aio.AioRpcError`` (its ``__cause__``) with what you need to act
on it: the method, the status code, the server's details, how many messages had arrived before
the failure and whether trying again could succeed (``retryable``, read by
``Stream.resilient``)::

    try:
        await client.unary("/streamnb.demo.v1.EventFeed/Get", {"seq": 1}, timeout=0.5)
    except RpcError as exc:
        print(exc.method, exc.code, exc.details, exc.retryable)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamnb.errors import StreamError

if TYPE_CHECKING:
    import grpc

__all__ = ["RETRYABLE_CODES", "DecodeError", "EncodeError", "RpcError"]

#: Status codes a resumable call retries by default. UNAVAILABLE is the transport's "try again"
#: (connection dropped, server restarting); ABORTED is a concurrency conflict the server asks the
#: client to retry. Deliberately absent: INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED,
#: NOT_FOUND, UNIMPLEMENTED, FAILED_PRECONDITION (repeating the request cannot help),
#: DEADLINE_EXCEEDED (the deadline covers the whole resumed stream), CANCELLED (somebody meant it),
#: RESOURCE_EXHAUSTED (often a size limit), INTERNAL/UNKNOWN/DATA_LOSS (server bugs). Pass your
#: own ``RetryPolicy(retry_on=...)`` to widen or narrow the set.
RETRYABLE_CODES: frozenset[str] = frozenset({"UNAVAILABLE", "ABORTED"})


def _code_name(code: grpc.StatusCode | None) -> str:
    return "NONE" if code is None else code.name


class RpcError(StreamError):
    """A gRPC call failed.

    Attributes: ``method`` (full path, ``/pkg.Service/Method``), ``code`` (``grpc.StatusCode``, or
    ``None`` when the failure did not come with a status), ``details`` (the server's message),
    ``received`` (messages that had arrived before the failure), ``retryable`` (True for the codes
    in :data:`RETRYABLE_CODES`).
    """

    def __init__(
        self,
        method: str,
        code: grpc.StatusCode | None,
        details: str | None,
        *,
        received: int = 0,
        sent: int = 0,
    ) -> None:
        self.method = method
        self.code = code
        self.details = details or ""
        self.received = received
        self.sent = sent
        self.retryable = _code_name(code) in RETRYABLE_CODES
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"{self.method} failed with {_code_name(self.code)}: {self.details or '(no details)'}"
            f" (after {self.received} message(s) received, {self.sent} sent)"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_rpc_error,
            (type(self), self.method, self.code, self.details, self.received, self.sent),
        )


def _rebuild_rpc_error(
    cls: type[RpcError],
    method: str,
    code: grpc.StatusCode | None,
    details: str,
    received: int,
    sent: int,
) -> RpcError:
    return cls(method, code, details, received=received, sent=sent)


class DecodeError(RpcError):
    """Response message ``index`` (0-based, counted per call) of ``method`` could not be decoded.

    ``data`` holds the raw bytes (kept so a dead-letter sink can store them); the decoder's own
    exception is ``__cause__``. Not retryable: the same bytes would fail again.
    """

    def __init__(self, method: str, index: int, data: bytes, reason: str) -> None:
        self.index = index
        self.data = data
        self.reason = reason
        super().__init__(method, None, reason, received=index)
        self.retryable = False

    def _message(self) -> str:
        preview = self.data[:32]
        more = "..." if len(self.data) > 32 else ""
        return (
            f"{self.method}: response message #{self.index} ({len(self.data)} bytes, "
            f"{preview!r}{more}) could not be decoded: {self.reason}. Use "
            f"on_decode_error='skip' to route undecodable messages to a DeadLetter instead."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.method, self.index, self.data, self.reason))


class EncodeError(StreamError):
    """Request message ``index`` of ``method`` could not be encoded (wrong type, bad field...).

    The encoder's exception is ``__cause__``. Raised before anything is sent for that message.
    """

    def __init__(self, method: str, index: int, reason: str) -> None:
        self.method = method
        self.index = index
        self.reason = reason
        super().__init__(f"{method}: request message #{index} could not be encoded: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.method, self.index, self.reason))
