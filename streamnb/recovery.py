"""Error recovery: dead-letter sinks, retry with exponential backoff, circuit breakers, and
resilient sources that resume after the last delivered item.

The rule: errors raise by default. Skipping is an explicit policy (``on_error="skip"``) that
counts every skipped item and keeps it, with its exception, in a bounded :class:`DeadLetter`.

Example::

    dl = DeadLetter()
    s = Stream(rows).map(parse, on_error="skip", dead_letter=dl)
    good = await s.collect(limit=None)
    print(dl.count, dl.entries[0].error)

    feed = Stream.resilient(
        lambda last: events(start=0 if last is None else last + 1),
        checkpoint=lambda ev: ev["seq"],
        retry=RetryPolicy(max_attempts=5, initial=0.05, max_delay=2.0),
    )
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from ._iter import aclose, aiter_any
from ._log import get_logger
from ._validate import check_choice, check_int, check_number
from .errors import CircuitOpenError, RetryExhaustedError
from .metrics import ResilientSnapshot

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "DeadLetter",
    "DeadLetterEntry",
    "ErrorPolicy",
    "ItemPolicy",
    "ResilientStats",
    "RetryPolicy",
    "annotate",
    "default_retryable",
    "describe",
    "resilient",
]

T = TypeVar("T")
_log = get_logger("streamnb.recovery")

ErrorPolicy = Literal["raise", "skip", "retry"]
_POLICIES: tuple[str, ...] = ("raise", "skip", "retry")
CircuitState = Literal["closed", "open", "half_open"]


_NEVER_RETRY = (
    PermissionError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
)


def default_retryable(exc: BaseException) -> bool:
    """Transient-looking failures: connection and timeout errors, other ``OSError``s except
    those that will never succeed on a retry (permission denied, no such file...), and any
    exception whose ``retryable`` attribute is true (streamnb's gRPC errors set it from the
    status code)."""
    if getattr(exc, "retryable", False):
        return True
    if isinstance(exc, _NEVER_RETRY):
        return False
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


@dataclass(frozen=True, slots=True)
class DeadLetterEntry(Generic[T]):
    """One skipped item: where (stage, index of the item at that stage's input) and why."""

    stage: str
    index: int
    item: T
    error: BaseException


class DeadLetter(Generic[T]):
    """Where skipped items go: a count of all of them and the last ``maxlen`` kept in full.

    ``count`` is exact however many items failed; ``entries`` is bounded so that an unbounded
    stream of failures cannot exhaust memory (``evicted`` tells how many fell off).
    """

    def __init__(self, maxlen: int = 1000) -> None:
        check_int("DeadLetter", "maxlen", maxlen, minimum=1)
        self.maxlen = maxlen
        self.count = 0
        self._entries: deque[DeadLetterEntry[T]] = deque(maxlen=maxlen)

    def add(self, stage: str, index: int, item: T, error: BaseException) -> None:
        self.count += 1
        self._entries.append(DeadLetterEntry(stage, index, item, error))

    @property
    def entries(self) -> list[DeadLetterEntry[T]]:
        return list(self._entries)

    @property
    def evicted(self) -> int:
        return self.count - len(self._entries)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"DeadLetter(count={self.count}, kept={len(self._entries)})"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter and a cap, for sources and per-item calls.

    ``max_attempts`` counts consecutive failures without progress (for a resilient source the
    budget resets whenever an item was delivered since the last failure). The n-th delay is
    ``min(max_delay, initial * multiplier**(n-1))``, multiplied by a random factor in [0.5, 1]
    when ``jitter`` is on (so reconnecting clients do not stampede). ``retry_on`` decides which
    exceptions are worth retrying; a bad request or a permission error will never succeed.
    """

    max_attempts: int = 5
    initial: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 10.0
    jitter: bool = True
    retry_on: Callable[[BaseException], bool] = field(default=default_retryable)

    def __post_init__(self) -> None:
        check_int("RetryPolicy", "max_attempts", self.max_attempts, minimum=1)
        check_number("RetryPolicy", "initial", self.initial, minimum=0.0)
        check_number("RetryPolicy", "multiplier", self.multiplier, minimum=1.0)
        check_number("RetryPolicy", "max_delay", self.max_delay, minimum=0.0)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        d = min(self.max_delay, self.initial * self.multiplier ** (attempt - 1))
        if self.jitter:
            d *= random.uniform(0.5, 1.0)
        return d


class CircuitBreaker:
    """Stops calling something that keeps failing; lets one trial call through later.

    ``closed``: calls pass; ``failure_threshold`` consecutive failures open it. ``open``: calls
    fail fast with :class:`CircuitOpenError` until ``reset_timeout`` seconds have passed, then it
    is ``half_open``: one trial call passes; success closes it, failure opens it again.
    Use it around map functions (``map(fn, breaker=cb)``) or sources
    (``Stream.resilient(..., breaker=cb)``). ``state``, ``failures`` and ``opened_count`` are
    observable; ``listeners`` are called with (old, new) state on every transition.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        *,
        name: str = "breaker",
        counts: Callable[[BaseException], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_int("CircuitBreaker", "failure_threshold", failure_threshold, minimum=1)
        check_number("CircuitBreaker", "reset_timeout", reset_timeout, minimum=0.0)
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._counts = counts or (lambda exc: True)
        self._clock = clock
        self._state: CircuitState = "closed"
        self._opened_at = 0.0
        self._trial_running = False
        self.failures = 0
        self.opened_count = 0
        self.rejected = 0
        self.listeners: list[Callable[[CircuitState, CircuitState], None]] = []

    @property
    def state(self) -> CircuitState:
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_timeout:
            self._set("half_open")
        return self._state

    def _set(self, new: CircuitState) -> None:
        old, self._state = self._state, new
        if old != new:
            if new == "open":
                self._opened_at = self._clock()
                self.opened_count += 1
            _log.info("streamnb.circuit.state", breaker=self.name, old=old, new=new)
            for cb in self.listeners:
                cb(old, new)

    def before_call(self) -> bool:
        """Raise :class:`CircuitOpenError` if a call must not happen now.

        Returns True when the call about to happen is the half-open trial: its caller then
        owns the trial slot and must end it with :meth:`record_success`,
        :meth:`record_failure` or - when the call was abandoned (cancelled, interrupted) -
        :meth:`release_trial`.
        """
        state = self.state
        if state == "open" or (state == "half_open" and self._trial_running):
            self.rejected += 1
            remaining = max(0.0, self.reset_timeout - (self._clock() - self._opened_at))
            raise CircuitOpenError(
                f"circuit {self.name!r} is open after {self.failures} consecutive failures; "
                f"next trial in {remaining:.2f} s"
            )
        if state == "half_open":
            self._trial_running = True
            return True
        return False

    def release_trial(self) -> None:
        """The trial call was abandoned before it could tell anything (a cancellation, a
        ``break``, ``KeyboardInterrupt``): free the slot so the next call is the trial. The
        circuit stays half-open and nothing is counted - the service was not judged."""
        self._trial_running = False

    def record_success(self) -> None:
        self._trial_running = False
        self.failures = 0
        if self._state != "closed":
            self._set("closed")

    def record_failure(self, exc: BaseException) -> None:
        self._trial_running = False
        if not self._counts(exc):
            return
        self.failures += 1
        if self._state == "half_open" or self.failures >= self.failure_threshold:
            self._set("open")

    def call_sync(self, fn: Callable[[Any], T], x: Any) -> T:
        """``fn(x)`` through the breaker (see :meth:`call`)."""
        trial = self.before_call()
        try:
            y = fn(x)
        except Exception as exc:
            self.record_failure(exc)
            raise
        except BaseException:
            if trial:
                self.release_trial()
            raise
        self.record_success()
        return y

    async def call(self, fn: Callable[[Any], Awaitable[T]], x: Any) -> T:
        """``await fn(x)`` through the breaker: refused while open, counted when it fails.

        A call that is cancelled (a timeout, a ``break`` downstream, ``run.stop()``) is not a
        failure of the service; if it was the half-open trial, its slot is freed so that the
        next call becomes the trial instead of the circuit staying blocked forever.
        """
        trial = self.before_call()
        try:
            y = await fn(x)
        except Exception as exc:
            self.record_failure(exc)
            raise
        except BaseException:
            if trial:
                self.release_trial()
            raise
        self.record_success()
        return y

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state}, failures={self.failures})"


class _Skip:
    """Marker returned by an item policy when the item went to the dead-letter sink."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<skipped>"


SKIP: Any = _Skip()


def describe(fn: Any) -> str:
    """A short name of a user function for labels and notes (its qualified name)."""
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or safe_repr(fn)


def safe_repr(item: Any, limit: int = 120) -> str:
    """``repr(item)`` cut to ``limit`` characters - and never an exception: an item whose
    ``__repr__`` raises is shown as ``<Type object at 0x...>``, so describing the item can
    never replace the error being described.

    Example::

        safe_repr(list(range(100)), 20)  # '[0, 1, 2, 3, 4, 5...'
    """
    try:
        text = repr(item)
        if not isinstance(text, str):
            raise TypeError("__repr__ returned a non-str")
    except Exception:
        text = f"<{type(item).__qualname__} object at {id(item):#x}>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def annotate(exc: BaseException, stage: str, index: int | None, item: Any) -> None:
    """Add a note naming the stage and the item to an exception raised by user code."""
    where = f"item #{index}" if index is not None else "an item"
    exc.add_note(f"streamnb: {stage} failed on {where} ({safe_repr(item)})")


class ItemPolicy:
    """What a stage does when its function raises for one item (``on_error=``).

    ``"raise"`` adds a note naming the stage and item index and re-raises; ``"skip"`` sends
    the item and its exception to ``dead_letter`` (one is created when none is given) and
    returns :data:`SKIP`; ``"retry"`` retries per ``retry`` (default 3 attempts), then raises
    :class:`RetryExhaustedError`. Constructing it validates ``on_error``.

    Example::

        policy = ItemPolicy("map(parse)", "skip", None, None)
        y = await policy.handle_sync(parse, line, index, exc)   # SKIP, counted in dead_letter
    """

    def __init__(
        self,
        stage: str,
        on_error: str,
        dead_letter: DeadLetter[Any] | None,
        retry: RetryPolicy | None,
    ) -> None:
        check_choice(stage, "on_error", on_error, _POLICIES)
        self.stage = stage
        self.on_error = on_error
        self.dead_letter = dead_letter if dead_letter is not None else DeadLetter()
        self.retry = retry or RetryPolicy(max_attempts=3)

    async def handle_sync(
        self, fn: Callable[[Any], Any], x: Any, index: int, exc: Exception
    ) -> Any:
        """``fn(x)`` raised ``exc``: retry per policy, or skip, or raise (with a note)."""
        return await self._handle(fn, x, index, exc, is_async=False)

    async def handle_async(
        self, fn: Callable[[Any], Awaitable[Any]], x: Any, index: int, exc: Exception
    ) -> Any:
        """``await fn(x)`` raised ``exc``: retry per policy, or skip, or raise (with a note)."""
        return await self._handle(fn, x, index, exc, is_async=True)

    async def _handle(
        self, fn: Callable[[Any], Any], x: Any, index: int, exc: Exception, *, is_async: bool
    ) -> Any:
        if self.on_error == "retry" and self.retry.retry_on(exc):
            attempt = 1
            while attempt < self.retry.max_attempts:
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
                try:
                    y = fn(x)
                    # a plain function may return an awaitable (map(lambda x: fetch(x)))
                    return (await y) if is_async or inspect.isawaitable(y) else y
                except Exception as again:
                    exc = again
                    if not self.retry.retry_on(exc):
                        break
        return self._give_up(x, index, exc)

    def _give_up(self, x: Any, index: int, exc: Exception) -> Any:
        if self.on_error == "skip":
            self.dead_letter.add(self.stage, index, x, exc)
            return SKIP
        annotate(exc, self.stage, index, x)
        if self.on_error == "retry" and self.retry.retry_on(exc):
            raise RetryExhaustedError(
                f"{self.stage}: item #{index} still failing after "
                f"{self.retry.max_attempts} attempts: {type(exc).__name__}: {exc}"
            ) from exc
        raise exc


class ResilientStats:
    """The live counters of one run of a resilient source; ``snapshot()`` freezes them.

    ``delivered`` items, ``failures`` (failed attempts), ``reconnects`` (sources opened again
    after a failure) and the ``last_error`` seen. Registered on the run as kind
    ``"resilient"`` by :meth:`Stream.resilient <streamnb.Stream.resilient>`.
    """

    __slots__ = ("delivered", "failures", "last_error", "name", "reconnects")

    def __init__(self, name: str) -> None:
        self.name = name
        self.delivered = 0
        self.failures = 0
        self.reconnects = 0
        self.last_error: str | None = None

    def snapshot(self) -> ResilientSnapshot:
        """A frozen copy of the counters."""
        return ResilientSnapshot(
            name=self.name,
            delivered=self.delivered,
            failures=self.failures,
            reconnects=self.reconnects,
            last_error=self.last_error,
            taken_at=time.monotonic(),
        )


async def resilient(
    factory: Callable[[Any], AsyncIterable[T] | Iterable[T]],
    checkpoint: Callable[[T], Any] | None,
    retry: RetryPolicy,
    breaker: CircuitBreaker | None,
    stats: ResilientStats,
) -> AsyncGenerator[T, None]:
    """Iterate ``factory(token)``; re-create it after retryable failures (Stream.resilient).

    ``stats`` receives the counts as they happen (see :class:`ResilientStats`).
    """
    token: Any = None
    delivered = 0
    failures = 0
    progressed = False
    while True:
        # True while this (re)connection is the breaker's half-open trial and not judged yet
        trial = breaker.before_call() if breaker is not None else False
        src: Any = None
        try:
            # opening is part of the attempt: a refused connection is retried like a drop
            src = aiter_any(factory(token))
            async for item in src:
                token = checkpoint(item) if checkpoint is not None else delivered + 1
                delivered += 1
                stats.delivered = delivered
                if not progressed:
                    progressed = True
                    failures = 0
                    if breaker is not None:
                        breaker.record_success()
                        trial = False
                yield item
            if breaker is not None:
                breaker.record_success()
            return
        except Exception as exc:
            if breaker is not None:
                breaker.record_failure(exc)
                trial = False
            stats.failures += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            if not retry.retry_on(exc):
                raise
            failures += 1
            progressed = False
            if failures >= retry.max_attempts:
                raise RetryExhaustedError(
                    f"source failed {failures} times in a row without delivering an item "
                    f"(after {delivered} items in all); last error: {type(exc).__name__}: {exc}"
                ) from exc
            delay = retry.delay(failures)
            _log.info(
                "streamnb.recovery.retry",
                attempt=failures,
                delivered=delivered,
                delay=round(delay, 3),
                error=f"{type(exc).__name__}: {exc}",
            )
            await asyncio.sleep(delay)
            stats.reconnects += 1
        except BaseException:
            # cancelled (a timeout, a break, run.stop()) before the trial could tell anything:
            # free the slot, or the circuit would stay blocked forever
            if trial and breaker is not None:
                breaker.release_trial()
            raise
        finally:
            if src is not None:
                await aclose(src)
