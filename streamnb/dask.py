"""Send a CPU-heavy stage to a Dask distributed cluster, keeping the same pipeline.

A stage whose work outgrows the notebook's machine does not need a new pipeline: give its
``map`` a :class:`DaskExecutor` and the calls run as Dask tasks on the cluster's worker
processes, while everything else (ordering, backpressure, error policies, metrics) stays the
Stream's business::

    from distributed import Client, LocalCluster
    from streamnb import Stream
    from streamnb.dask import DaskExecutor

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = Client(cluster)
    async with DaskExecutor(client, scatter={"model": big_model}) as ex:
        scores = await (
            Stream(rows)
            .map(score, executor=ex, concurrency=8)     # score(row, *, model) on the cluster
            .collect(limit=None)
        )
        print(ex.info())   # dask: 0 in flight (max 8), 400 done ... http://127.0.0.1:.../status

What it adds over ``client.get_executor()`` (which also works with ``map(executor=...)``):

* **Every call is a new task** (``pure=False``). ``get_executor()`` submits with Dask's
  default ``pure=True``: equal items share one task key, so ``on_error="retry"`` gets the
  cached failure back instead of running the call again.
* **Cancellation never blocks the event loop.** When the consumer breaks, is cancelled or
  the run stops, the stage cancels its in-flight calls and this executor cancels their Dask
  futures asynchronously on the client's own loop; the scheduler releases them.
  (``get_executor()`` cancels too, but with a synchronous round trip to the scheduler per
  call, on the event loop's thread.)
* **The remote traceback, and nothing that pins the task.** The exception re-raised locally
  is the worker's exception object with the worker's frames (then the stage adds its note:
  stage name and item index). Frames of the local waiting machinery are cut off, so a kept
  exception (a dead letter, ``sys.last_value`` in a notebook) does not keep the failed task
  alive on the scheduler.
* **Scatter once.** ``scatter={"model": obj}`` ships ``obj`` to every worker once, at
  construction, and passes it to each call as the keyword ``model=``. It helps when a large
  constant argument (a model, a lookup table, more than ~1 MB) would otherwise be pickled
  into every task - Dask warns "Large object ... detected in task graph" when that happens.
  It does not help for the items themselves: each item is sent to the cluster exactly once
  anyway, so scattering it first only adds a round trip. The function receives the
  scattered objects as keyword arguments (``def score(row, *, model)``); for a type checker
  such a function is not a one-argument callable, so cast it or give the keyword a default.
  Scattered keywords go to *every* call of the executor: use one executor per stage.
* **Task size: batch short calls.** Each call is one Dask task, and a task costs CPU outside
  the function: the client and the scheduler (in the notebook's process with a
  ``LocalCluster``) and the worker's bookkeeping. ``benchmarks/bench_dask.py`` measures it
  (two Dask runs of the same work with 10x fewer tasks; the CPU difference is per-task cost):
  ~4-7 ms per task on a loaded 2-core machine where that cost and the workers share the two
  cores, about the same as plain ``client.submit`` + ``await`` with a window of futures
  (this executor adds no round trip of its own: one hop to the client's loop per call, one
  release). So one task per ~5 ms call runs at ~1x the speed of two threads, whatever the
  concurrency; only bigger tasks amortise it. Batch the items so that a task does at
  least ~50 ms of work - ``.batch(10).map(score_many, executor=ex, concurrency=4)
  .flat_map(lambda b: b)`` reached ~1.5x (up to ~1.9x on a quiet machine) where one task
  per item stayed below 1x. Keep ``concurrency`` at two to four tasks per worker thread so
  that workers never wait. On a small LocalCluster, ``distributed.worker.profile.enabled:
  False`` and ``distributed.scheduler.work-stealing: False`` trim Dask's background cost.
* **Live figures**: :meth:`DaskExecutor.info` returns a :class:`DaskStageInfo` (futures in
  flight on the cluster, the highest number seen, counts, the dashboard link). In a run, the
  stage that uses the executor reports it like any concurrent stage - through the run, as a
  ``ConcurrencySnapshot`` naming the executor and carrying its ``dashboard_link`` - so the
  notebook dashboard shows the cluster dashboard's link; nothing is kept in a process-wide
  registry.
* **Quiet logs.** ``streamnb.dask.open`` / ``streamnb.dask.close`` are info events of
  streamnb's logger (``streamnb._log``): a notebook that configured no logging sees only
  warnings and errors, not a line per executor in its cells.

Backpressure reaches the cluster through the stage: ``map(concurrency=N)`` never has more
than N calls outstanding, and each finished task is released before its result is handed
to the stage, so the scheduler never holds more than N of the stage's tasks. A Dask task
that already runs on a worker cannot be interrupted (Python threads cannot be killed): after
a cancellation the scheduler forgets it within a round trip, but the worker finishes the
current call. ``map(breaker=...)`` does not combine with a remote executor: the breaker
would travel with the function and count failures on the worker, not here.

The client may be synchronous (``Client(cluster)``, the usual case in a notebook; Dask runs
it on its own thread) or asynchronous (``await Client(cluster, asynchronous=True)`` on the
running loop; then pass ``scatter`` values that you scattered yourself with
``await client.scatter(obj, broadcast=True)``).

``import streamnb`` never imports this module or ``distributed``; install the extra with
``pip install streamnb[dask]``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import inspect
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import distributed
from dask.utils import funcname
from distributed import Client
from distributed import Future as DaskFuture

from ._log import get_logger
from .errors import DaskStageError

__all__ = ["DaskExecutor", "DaskStageError", "DaskStageInfo"]

P = ParamSpec("P")
R = TypeVar("R")

_log = get_logger("streamnb.dask")

#: Keyword names that ``Client.submit`` keeps for itself: a scattered keyword cannot use them.
_RESERVED = frozenset(inspect.signature(Client.submit).parameters) - {"self", "func", "args"}
#: Frames from here are the local waiting machinery, not the remote call.
_DISTRIBUTED_DIR = os.path.dirname(os.path.abspath(distributed.__file__)) + os.sep
_THIS_FILE = os.path.abspath(__file__)


class _Call:
    """One call handed to a :class:`DaskExecutor`: its task key, the local future handed
    out for it and, between submission and settlement, its Dask future."""

    __slots__ = ("dfut", "key", "out")

    def __init__(self, key: str, out: cf.Future[Any]) -> None:
        self.key = key
        self.out = out
        self.dfut: DaskFuture[Any] | None = None



@dataclass(frozen=True, slots=True)
class DaskStageInfo:
    """A snapshot of one :class:`DaskExecutor`, for a dashboard or a print.

    ``in_flight`` counts the Dask futures this executor holds right now (submitted, not yet
    settled or released); ``max_in_flight`` is the highest that figure has been. With one
    executor per stage it never exceeds the stage's ``concurrency``. ``dashboard_link`` is
    the cluster's dashboard URL (None when the scheduler serves none).
    """

    name: str
    in_flight: int
    max_in_flight: int
    submitted: int
    completed: int
    failed: int
    cancelled: int
    scattered: tuple[str, ...]
    dashboard_link: str | None
    closed: bool

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for JSON, a log line, or a DataFrame row)."""
        return asdict(self)

    def __str__(self) -> str:
        link = f" · {self.dashboard_link}" if self.dashboard_link else ""
        return (
            f"{self.name}: {self.in_flight} in flight (max {self.max_in_flight}), "
            f"{self.completed} done, {self.failed} failed, {self.cancelled} cancelled{link}"
        )


class DaskExecutor(cf.Executor):
    """A ``concurrent.futures.Executor`` that runs every call as a Dask task.

    Pass it to a stage: ``stream.map(fn, executor=DaskExecutor(client), concurrency=N)``.
    The stage's ``concurrency`` is the number of tasks it keeps on the cluster; choose a few
    per worker thread (e.g. ``2 * total_threads``) so that workers never wait for the next
    task while a result travels back, and give each task at least ~50 ms of work (batch
    shorter calls: see the module docs). ``ordered``, ``on_error``, ``dead_letter`` and
    ``retry`` work as for any stage.

    ``scatter``: keyword arguments sent to every worker once, now, and passed to every call
    (``fn(item, **scatter)``); values that are already Dask futures are passed as they are
    (and not released by this executor). ``name`` labels :meth:`info` and log lines.

    Close it when done (``with``/``async with``, :meth:`shutdown` or :meth:`aclose`): that
    cancels what is still in flight and releases the scattered data.

    Example::

        with DaskExecutor(client, scatter={"weights": w}) as ex:
            out = await Stream(xs).map(predict, executor=ex, concurrency=4).collect()
    """

    def __init__(
        self, client: Client, *, scatter: Mapping[str, Any] | None = None, name: str = "dask"
    ) -> None:
        if not isinstance(client, Client):
            raise TypeError(
                f"DaskExecutor(client): expected a distributed.Client, got {type(client).__name__}"
            )
        self.name = name
        self._client = client
        self._c: Any = client  # distributed's partial annotations: treat it as untyped here
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # key -> the call: the local future handed out, and its Dask future once submitted
        self._outstanding: dict[str, _Call] = {}
        self._uid = uuid.uuid4().hex[:12]
        self._seq = 0
        self._submitted = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0
        self._max_in_flight = 0
        self._idle_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closed = False
        self._checked: Callable[..., Any] | None = None
        self._scattered: dict[str, DaskFuture[Any]] = {}
        self._owned: list[DaskFuture[Any]] = []
        try:
            for kw, value in (scatter or {}).items():
                self._scattered[kw] = self._scatter_one(kw, value)
        except BaseException:
            self._release_scattered()
            raise
        self._dashboard_link = _dashboard_link(client)
        _log.info(
            "streamnb.dask.open",
            executor=name,
            scheduler=client.scheduler.address if client.scheduler is not None else None,
            scattered=sorted(self._scattered),
        )

    # -- construction helpers -----------------------------------------------------------------
    def _scatter_one(self, kw: str, value: Any) -> DaskFuture[Any]:
        if not kw.isidentifier() or kw in _RESERVED:
            raise DaskStageError(
                f"DaskExecutor(scatter={{{kw!r}: ...}}): the keyword must be a valid Python "
                f"name and not one of Client.submit's own ({', '.join(sorted(_RESERVED))})"
            )
        if isinstance(value, DaskFuture):
            return value
        if self._client.asynchronous:
            raise DaskStageError(
                f"DaskExecutor(scatter={{{kw!r}: ...}}) with an asynchronous client: scatter "
                f"it yourself first - fut = await client.scatter(obj, broadcast=True) - and "
                f"pass scatter={{{kw!r}: fut}}"
            )
        # a one-element list, so that a list or dict value is scattered as one object
        fut: DaskFuture[Any] = self._c.scatter([value], broadcast=True, hash=False)[0]
        self._owned.append(fut)
        return fut

    def _check_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> None:
        clash = self._scattered.keys() & kwargs.keys()
        if clash:
            raise DaskStageError(
                f"DaskExecutor({self.name!r}).submit: keyword(s) {sorted(clash)} are given "
                "both per call and in scatter="
            )
        if fn is self._checked:
            return
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):  # builtins without a signature: let Dask try
            self._checked = fn
            return
        try:
            sig.bind(*args, **kwargs, **self._scattered)
        except TypeError as exc:
            raise DaskStageError(
                f"DaskExecutor({self.name!r}): {getattr(fn, '__qualname__', fn)!s}{sig} "
                f"cannot take the scattered keyword(s) {sorted(self._scattered)}: {exc}. "
                "Give the function those keyword parameters (and do not combine scatter= "
                "with map(breaker=...), which wraps the function)"
            ) from None
        self._checked = fn

    # -- the Executor protocol ----------------------------------------------------------------
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> cf.Future[R]:
        """Run ``fn(*args, **kwargs, **scatter)`` as a new Dask task; a local future for it.

        Cancelling the returned future cancels the Dask future (without waiting for the
        scheduler). Its exception, if the call failed, is the remote one with the remote
        frames.
        """
        if self._closed:
            raise DaskStageError(
                f"DaskExecutor({self.name!r}) is shut down; create a new one to submit more"
            )
        if self._scattered:
            self._check_call(fn, args, kwargs)
            kwargs.update(self._scattered)
        out: cf.Future[R] = cf.Future()
        with self._lock:
            self._seq += 1
            # a cheap unique key, named after the function like Dask's own (which costs two
            # uuid4() calls per task), so the dashboard groups the tasks the same way
            call = _Call(f"{funcname(fn)}-{self._uid}-{self._seq}", out)
            self._outstanding[call.key] = call
            self._submitted += 1
            n = len(self._outstanding)
            if n > self._max_in_flight:
                self._max_in_flight = n
        out.add_done_callback(lambda f: self._on_local_done(call, f))
        # one hop to the client's loop, which submits and then waits there
        self._c.loop.add_callback(self._run, call, fn, args, kwargs)
        return out

    async def _run(
        self, call: _Call, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any
    ) -> None:
        """On the client's loop: submit the task, wait for it, let go of it, hand over.

        The Dask future is released and the call leaves the outstanding set *before* the
        outcome is handed over. The release reaches the client's send queue in one more
        hop on this loop (``Future.release`` schedules it); the stage's next call can only
        be submitted after the outcome arrives, and its ``_run`` is queued on this loop
        behind that hop, so the scheduler always sees the release first and never holds
        more than the stage's ``concurrency`` of its tasks.
        """
        if call.out.cancelled():  # cancelled before it reached the cluster: nothing to undo
            self._finish(call, "cancelled")
            return
        try:
            call.dfut = self._c.submit(fn, *args, key=call.key, pure=False, **kwargs)
        except BaseException as exc:  # e.g. the client is closed
            self._finish(call, "failed")
            _deliver(call.out.set_exception, exc)
            return
        setter: Callable[[Any], None] | None = None
        value: Any = None
        try:
            value = await self._c.gather(call.dfut, asynchronous=True)
            setter = call.out.set_result
        except asyncio.CancelledError:  # the client's loop is closing under us
            setter = call.out.set_exception
            value = DaskStageError(
                f"DaskExecutor({self.name!r}): the Dask client stopped waiting for task "
                f"{call.key!r} (was the client closed while the stage ran?)"
            )
            raise
        except BaseException as exc:
            if not call.out.cancelled():  # else: we asked for it, the remote cancel came through
                setter, value = call.out.set_exception, _remote_only(exc)
        finally:
            call.dfut.release()  # now, whoever else refers to it
            call.dfut = None
            if setter is None:
                self._finish(call, "cancelled")
            else:
                self._finish(call, "completed" if setter == call.out.set_result else "failed")
                _deliver(setter, value)

    def _finish(self, call: _Call, outcome: str) -> None:
        with self._lock:
            self._outstanding.pop(call.key, None)
            if outcome == "completed":
                self._completed += 1
            elif outcome == "failed":
                self._failed += 1
            else:
                self._cancelled += 1
            if not self._outstanding:
                self._idle.notify_all()
                waiters, self._idle_waiters = self._idle_waiters, []
                for loop, idle in waiters:
                    loop.call_soon_threadsafe(_wake, idle)

    def _on_local_done(self, call: _Call, f: cf.Future[Any]) -> None:
        if f.cancelled() and call.key in self._outstanding:
            self._c.loop.add_callback(self._cancel_remote, call)

    async def _cancel_remote(self, call: _Call) -> None:
        # on the client's loop, like _run: either _run has not started (it will see the
        # cancellation and submit nothing) or the task is submitted and call.dfut is set
        # (or already settled and cleared)
        if call.dfut is not None:
            await self._c.cancel([call.dfut], asynchronous=True, reason="streamnb: stage cancelled")

    def _cancel_all(self) -> None:
        with self._lock:
            entries = list(self._outstanding.values())
        for call in entries:
            call.out.cancel()  # -> _on_local_done -> the Dask future is cancelled too

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting calls and release the scattered data.

        ``cancel_futures=True`` cancels what is still in flight; ``wait=True`` blocks until
        nothing is (not allowed with an asynchronous client: use ``await aclose()``).
        Safe to call more than once.
        """
        if wait and self._client.asynchronous and self._outstanding:
            raise DaskStageError(
                f"DaskExecutor({self.name!r}).shutdown(wait=True) would block the loop its "
                "asynchronous client runs on; use 'await executor.aclose()'"
            )
        self._closed = True
        if cancel_futures:
            self._cancel_all()
        if wait:
            with self._idle:
                self._idle.wait_for(lambda: not self._outstanding)
        self._release_scattered()
        _log.info("streamnb.dask.close", **self.info().as_dict())

    async def aclose(self) -> None:
        """Cancel what is in flight, wait (without blocking the loop) until the client let
        go of it, release the scattered data. Safe to call more than once. (If the client
        itself has hung, bound the wait with ``async with asyncio.timeout(s)``.)"""
        self._closed = True
        self._cancel_all()
        loop = asyncio.get_running_loop()
        idle: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._outstanding:
                self._idle_waiters.append((loop, idle))
            else:
                idle.set_result(None)
        await idle
        self._release_scattered()
        _log.info("streamnb.dask.close", **self.info().as_dict())

    def _release_scattered(self) -> None:
        owned, self._owned = self._owned, []
        for fut in owned:
            fut.release()  # type: ignore[no-untyped-call]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # leaving early (an exception, an interrupt) cancels; a normal exit lets calls finish
        self.shutdown(wait=True, cancel_futures=exc_type is not None)

    async def __aenter__(self) -> DaskExecutor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- observation --------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        return self._client

    @property
    def in_flight(self) -> int:
        """Dask futures held right now (submitted and not yet settled or released)."""
        return len(self._outstanding)

    @property
    def max_in_flight(self) -> int:
        """The most Dask futures this executor has held at once."""
        return self._max_in_flight

    @property
    def dashboard_link(self) -> str | None:
        """The cluster dashboard's URL (None when the scheduler serves none).

        A run's concurrent stage reads it from its executor for its ``ConcurrencySnapshot``,
        so the notebook dashboard links to the cluster's.
        """
        return self._dashboard_link

    def info(self) -> DaskStageInfo:
        """A :class:`DaskStageInfo` snapshot (cheap: no call to the scheduler)."""
        with self._lock:
            return DaskStageInfo(
                name=self.name,
                in_flight=len(self._outstanding),
                max_in_flight=self._max_in_flight,
                submitted=self._submitted,
                completed=self._completed,
                failed=self._failed,
                cancelled=self._cancelled,
                scattered=tuple(sorted(self._scattered)),
                dashboard_link=self.dashboard_link,
                closed=self._closed,
            )

    def __repr__(self) -> str:
        return f"DaskExecutor({self.name!r}, in_flight={self.in_flight}, closed={self._closed})"


# -- helpers ---------------------------------------------------------------------------------
def _dashboard_link(client: Client) -> str | None:
    try:
        # a cluster object knows whether its scheduler serves a dashboard; the client
        # alone would format one from the configuration even when there is none
        cluster: Any = client.cluster
        link = cluster.dashboard_link if cluster is not None else client.dashboard_link
    except Exception:  # no scheduler info yet, or a cluster object without one
        return None
    return str(link) if link else None


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _deliver(setter: Callable[[Any], None], value: Any) -> None:
    try:
        setter(value)
    except cf.InvalidStateError:  # cancelled locally meanwhile: nobody waits for it
        pass


def _remote_only(exc: BaseException) -> BaseException:
    """``exc`` with the local waiting frames (this module, distributed) cut from its
    traceback: what remains is the worker's frames. Those local frames hold the Dask future,
    so keeping them would keep the failed task alive as long as the exception lives."""
    tb = exc.__traceback__
    while tb is not None:
        where = os.path.abspath(tb.tb_frame.f_code.co_filename)
        if not (where == _THIS_FILE or where.startswith(_DISTRIBUTED_DIR)):
            break
        tb = tb.tb_next
    return exc.with_traceback(tb)
