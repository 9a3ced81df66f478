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
            .map(score, executor=ex)    # score(row, *, model) on the cluster
            .collect(limit=None)
        )
        print(ex.info())   # dask: 0 in flight (max 40), 400 done, 40 tasks (10.0 per task) ...

What it adds over ``client.get_executor()`` (which also works with ``map(executor=...)``):

* **Calls grouped into tasks, adaptively.** A Dask task costs milliseconds of CPU outside
  the function (the client, the scheduler - in the notebook's process with a
  ``LocalCluster`` - and the worker's bookkeeping: ~5-13 ms per task measured here, see
  ``benchmarks/bench_dask.py``), so one task per 5 ms call is no faster than two threads.
  The executor therefore packs consecutive ``submit(fn, x)`` calls into one task that runs
  ``fn`` over them one by one, each call keeping its own future and its own outcome: a
  failing call does not fail its task-mates, a retry re-submits only that call, cancelling
  one call's future before its task is sent removes it from the task. The size comes from
  measurement: after the first calls return, a task gets enough calls for ``task_seconds``
  of work (default 50 ms, more when the measured per-task overhead is high), a slow
  function gets one call per task. A call's work is its time on the worker less the time
  the worker waited for a CPU core (Linux tells; elsewhere the whole time counts): on cores
  busy with other work a task keeps its calls - and lasts longer - rather than shrinking
  to a size whose fixed cost, CPU as well, those busy cores then pay more often. No call
  waits more than ``max_wait`` (default 0.25 s) for its task to fill, and a task is sent
  at once when the cluster would otherwise idle, so a slow source is not held back.
  ``batch_size=1`` restores one task per call.
* **The stage gives it enough calls to group.** The stage's ``concurrency`` bounds the
  calls outstanding, so a task can only hold calls the stage has already handed over: it
  takes (calls per task) x 2 x (worker threads) - e.g. 40 for a ~5 ms function on two
  workers - which is :attr:`DaskExecutor.preferred_concurrency`. Leave ``concurrency`` out
  and the stage follows that figure: ``2 x threads`` at first, then, as soon as the first
  calls were timed, what fills the tasks (it is read again every few items). An explicit
  ``concurrency`` wins; with a smaller one the executor splits what it has over the workers
  (each keeps about two tasks) and the speed-up shrinks accordingly.
* **One hop per task back to the event loop.** A ``map`` stage submits through
  :meth:`DaskExecutor.submit_async`, whose futures belong to the stage's loop: the outcomes
  of a task reach it in one ``call_soon_threadsafe``, where ``loop.run_in_executor`` would
  add a ``concurrent.futures.Future`` and a wake-up of the loop per call (measured: the
  loop's CPU per call fell from ~0.08-0.12 ms to ~0.03-0.05 ms in ``bench_dask``'s stage).
  A function that raises ``StopIteration`` fails its call with a ``RuntimeError`` (an
  asyncio future cannot carry a ``StopIteration``).
* **Every call runs again when retried** (each task is new: ``pure=False``).
  ``client.get_executor()`` submits with Dask's default ``pure=True``: equal items share
  one task key, so ``on_error="retry"`` gets the cached failure back.
* **Cancellation never blocks the event loop.** When the consumer breaks, is cancelled or
  the run stops, the stage cancels its in-flight calls: calls not yet sent are dropped,
  a task all of whose calls are cancelled is cancelled asynchronously on the client's own
  loop and the scheduler releases it; the results of a task that still runs for others are
  dropped for the cancelled calls. (``get_executor()`` cancels too, but with a synchronous
  round trip to the scheduler per call, on the event loop's thread.)
* **The remote traceback, and nothing that pins the task.** The exception re-raised locally
  is the worker's exception object with the worker's frames (then the stage adds its note:
  stage name and item index); no frame of the local waiting machinery, so a kept
  exception (a dead letter, ``sys.last_value`` in a notebook) does not keep a task alive
  on the scheduler. A ``BaseException`` that is not an ``Exception`` (a ``CancelledError``
  raised by your function) and an exception that cannot be pickled arrive as a
  ``RuntimeError`` naming them, so the stage's error policy handles them as a failed call.
  If a whole task fails (an item that cannot be pickled, a worker that died), each of its
  calls is run again alone once, so only the culprit fails. (A *result* that cannot
  be pickled fails its task on the way back, and Dask may fail other results fetched from
  that worker in the same request: return plain data.)
* **Scatter once.** ``scatter={"model": obj}`` ships ``obj`` to every worker once, at
  construction, and passes it to each call as the keyword ``model=``. It helps when a large
  constant argument (a model, a lookup table, more than ~1 MB) would otherwise be pickled
  into every task - Dask warns "Large object ... detected in task graph" when that happens.
  It does not help for the items themselves: each item is sent to the cluster exactly once
  anyway, so scattering it first only adds a round trip. The function receives the
  scattered objects as keyword arguments (``def score(row, *, model)``); for a type checker
  such a function is not a one-argument callable, so cast it or give the keyword a default.
  Scattered keywords go to *every* call of the executor: use one executor per stage.
* **Background cost.** On a small LocalCluster, ``distributed.worker.profile.enabled:
  False`` and ``distributed.scheduler.work-stealing: False`` trim Dask's own periodic work.
* **Live figures**: :meth:`DaskExecutor.info` returns a :class:`DaskStageInfo` (futures in
  flight on the cluster, the highest number seen, counts, the dashboard link, and the
  grouping: tasks sent, calls per task, seconds per task and per call, the current target).
  In a run, the stage that uses the executor reports it like any concurrent stage - through
  the run, as a ``ConcurrencySnapshot`` naming the executor, carrying its
  ``dashboard_link`` and, in ``tasks``, a :class:`~streamnb.metrics.TaskSnapshot` of the
  grouping counted from the stage's start (tasks sent and on the cluster, calls per task,
  seconds per task, the per-task overhead estimate; from :meth:`DaskExecutor.task_snapshot`)
  - so the notebook dashboard's row for the stage shows them beside the cluster dashboard's
  link. Nothing is kept in a process-wide registry.
* **Quiet logs.** ``streamnb.dask.open`` / ``streamnb.dask.close`` are info events of
  streamnb's logger (``streamnb._log``): a notebook that configured no logging sees only
  warnings and errors, not a line per executor in its cells.

Backpressure reaches the cluster through the stage: ``map(concurrency=N)`` never has more
than N calls outstanding, and each finished task is released before its results are
handed to the stage, so the scheduler never holds more than N of the stage's tasks (with
grouping, far fewer). A Dask task
that already runs on a worker cannot be interrupted (Python threads cannot be killed): after
a cancellation the scheduler forgets it within a round trip, but the worker finishes the
current call. ``map(breaker=...)`` does not combine with a remote executor: the breaker
would travel with the function and count failures on the worker, not here.

The client may be synchronous (``Client(cluster)``, the usual case in a notebook; Dask runs
it on its own thread) or asynchronous (``await Client(cluster, asynchronous=True)`` on the
running loop; then pass ``scatter`` values that you scattered yourself with
``await client.scatter(obj, broadcast=True)``).

``import streamnb`` never imports this module or ``distributed``; install the extra with
``pip install streamnb[dask]``. The workers run each task through a small streamnb module,
so streamnb must be installed in the workers' environment too (a ``LocalCluster`` shares the
notebook's).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import inspect
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

import distributed
from dask.utils import funcname
from distributed import Client
from distributed import Future as DaskFuture
from tblib import Traceback  # type: ignore[import-untyped]

from ._dask_worker import Outcome, run_calls
from ._log import get_logger
from ._validate import check_int, check_seconds
from .errors import ArgumentTypeError, DaskStageError
from .metrics import TaskSnapshot

__all__ = ["DaskExecutor", "DaskStageError", "DaskStageInfo"]

P = ParamSpec("P")
R = TypeVar("R")

_log = get_logger("streamnb.dask")

#: Keyword names that ``Client.submit`` keeps for itself: a scattered keyword cannot use them.
_RESERVED = frozenset(inspect.signature(Client.submit).parameters) - {"self", "func", "args"}
#: Frames from here are the local waiting machinery, not the remote call.
_DISTRIBUTED_DIR = os.path.dirname(os.path.abspath(distributed.__file__)) + os.sep
_THIS_FILE = os.path.abspath(__file__)

#: Most calls in one task (a tiny function would otherwise ask for thousands).
_MAX_BATCH = 1000
#: Seconds without a new call after which the stage is taken to wait for results (more than
#: the interpreter's 5 ms thread switch interval, so that a burst of calls is not cut).
_QUIET = 0.012
#: Seconds over which the most calls outstanding is remembered as the stage's limit.
_PEAK_WINDOW = 1.0
#: Recent per-task overheads kept; the least of them is the estimate.
_OVERHEAD_WINDOW = 20
#: Seconds between two looks at the cluster's number of worker threads.
_THREADS_REFRESH = 2.0


class _Call:
    """One ``submit``: the function and its arguments, the local future handed out for it
    (a ``concurrent.futures`` one, or - from :meth:`DaskExecutor.submit_async` - an asyncio
    one of ``loop``) and, once it is put in a task, that task."""

    __slots__ = ("args", "arrived", "fn", "group", "kwargs", "loop", "out")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Any,
        out: cf.Future[Any] | asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.out = out
        self.loop = loop  # None: ``out`` is a concurrent.futures.Future
        self.group: _Group | None = None
        self.arrived = 0.0  # time.monotonic() of the submit


class _Group:
    """Calls sent as one Dask task: its key, its calls, its Dask future while submitted,
    and how many of its calls are still wanted (not cancelled)."""

    __slots__ = ("calls", "dfut", "key", "live", "queued", "solo")

    def __init__(self, key: str, calls: list[_Call], solo: bool) -> None:
        self.key = key
        self.calls = calls
        self.live = len(calls)
        self.solo = solo  # a call run alone again after its whole task failed
        # sent while every worker thread had a task: its round trip includes waiting for one
        self.queued = False
        self.dfut: DaskFuture[Any] | None = None


@dataclass(frozen=True, slots=True)
class DaskStageInfo:
    """A snapshot of one :class:`DaskExecutor`, for a dashboard or a print.

    ``in_flight`` counts the calls this executor holds right now (submitted, not yet settled
    or cancelled); ``max_in_flight`` is the highest that figure has been. With one executor
    per stage it never exceeds the stage's ``concurrency``. ``dashboard_link`` is the
    cluster's dashboard URL (None when the scheduler serves none).

    The grouping of calls into tasks: ``tasks`` sent so far (``tasks_in_flight`` now),
    ``items_per_task`` (mean of the finished ones), ``task_seconds`` (mean time a task ran
    on its worker), ``item_seconds`` (recent time of one call, less what its worker waited for a CPU
    core), ``overhead_seconds`` (the
    least round trip beyond the worker's run time seen lately), and ``batch_size``, the
    calls per task the executor aims at now (None until the first calls returned).
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
    tasks: int = 0
    tasks_in_flight: int = 0
    items_per_task: float | None = None
    task_seconds: float | None = None
    item_seconds: float | None = None
    overhead_seconds: float | None = None
    batch_size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for JSON, a log line, or a DataFrame row)."""
        return asdict(self)

    def __str__(self) -> str:
        link = f" · {self.dashboard_link}" if self.dashboard_link else ""
        return (
            f"{self.name}: {self.in_flight} in flight (max {self.max_in_flight}), "
            f"{self.completed} done, {self.failed} failed, {self.cancelled} cancelled, "
            f"{self.tasks} tasks{_per_task(self)}{link}"
        )


class DaskExecutor(cf.Executor):
    """A ``concurrent.futures.Executor`` that runs calls as Dask tasks, grouping short ones.

    Pass it to a stage: ``stream.map(fn, executor=DaskExecutor(client))``.
    Consecutive calls of the same function are packed into one task of about
    ``task_seconds`` of work (measured; see the module docs), each call with its own future
    and outcome, and no call waits more than ``max_wait`` seconds for its task to be sent.
    The stage's ``concurrency`` bounds the calls outstanding, so it bounds the calls a task
    can hold: it needs (calls per task) x 2 x (worker threads), e.g. 40 for ~5 ms calls on
    two workers - :attr:`preferred_concurrency`, which a stage without ``concurrency=``
    follows; ``concurrency=N`` fixes it.
    ``ordered``, ``on_error``, ``dead_letter`` and ``retry`` work as for any stage.

    ``batch_size``: None (default) sizes tasks from measurement; an int is a fixed number of
    calls per task (``1``: one task per call, no waiting). ``task_seconds``: the work a task
    aims at (default 0.05; its calls' own time, not the worker's wait for a busy core).
    ``max_wait``: the most a call waits for its task to fill (default 0.25 s).
    ``fill_idle`` (default True): send a task before it is full when the stage pauses and
    the cluster holds fewer than two tasks per worker thread - lower latency and busy
    workers with a small ``concurrency``; False: only full tasks and ``max_wait`` send.
    ``scatter``: keyword arguments sent to every worker once, now, and passed to every
    call (``fn(item, **scatter)``); values that are already Dask futures are passed as they
    are (and not released by this executor). ``name`` labels :meth:`info` and log lines.

    Close it when done (``with``/``async with``, :meth:`shutdown` or :meth:`aclose`): that
    cancels what is still in flight and releases the scattered data.

    Example::

        with DaskExecutor(client, scatter={"weights": w}) as ex:
            out = await Stream(xs).map(predict, executor=ex).collect()
            print(ex.info().items_per_task)   # e.g. 10.0 for a ~5 ms predict()
    """

    def __init__(
        self,
        client: Client,
        *,
        scatter: Mapping[str, Any] | None = None,
        name: str = "dask",
        batch_size: int | None = None,
        task_seconds: float = 0.05,
        max_wait: float = 0.25,
        fill_idle: bool = True,
    ) -> None:
        if not isinstance(client, Client):
            raise TypeError(
                f"DaskExecutor(client): expected a distributed.Client, got {type(client).__name__}"
            )
        if batch_size is not None:
            check_int("DaskExecutor", "batch_size", batch_size, minimum=1)
        self._fixed_size = batch_size
        self._task_target = check_seconds("DaskExecutor", "task_seconds", task_seconds)
        self._max_wait = check_seconds("DaskExecutor", "max_wait", max_wait)
        if not isinstance(fill_idle, bool):
            raise ArgumentTypeError(
                f"DaskExecutor(fill_idle={fill_idle!r}): expected a bool, "
                f"got {type(fill_idle).__name__}"
            )
        self._fill_idle = fill_idle
        self.name = name
        self._client = client
        self._c: Any = client  # distributed's partial annotations: treat it as untyped here
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # every call submitted and not yet settled (pending, or in a task)
        self._outstanding: set[_Call] = set()
        # calls waiting for their task: all of one function, the oldest first
        self._pending: list[_Call] = []
        self._last_submit = 0.0
        self._ticking = False  # a timer on the client's loop watches the pending calls
        # the most calls outstanding in this and the previous _PEAK_WINDOW: the stage's limit
        self._peak = self._peak_before = 0
        self._peak_since = 0.0
        self._uid = uuid.uuid4().hex[:12]
        self._seq = 0
        self._submitted = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0
        self._max_in_flight = 0
        # the grouping: tasks out now and in all, and what the finished ones measured
        self._tasks_out = 0
        self._tasks = 0
        self._tasks_done = 0
        self._task_items = 0
        self._task_run = 0.0
        self._item_s: float | None = None  # recent seconds per call (moving average)
        self._overheads: deque[float] = deque(maxlen=_OVERHEAD_WINDOW)
        self._threads = 1  # worker threads of the cluster, refreshed from the scheduler
        self._threads_at = -_THREADS_REFRESH
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
        self._threads_at = time.monotonic()
        cast(Any, client).loop.add_callback(self._refresh_threads)  # tasks that keep it busy
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
        """Run ``fn(*args, **kwargs, **scatter)`` on the cluster; a local future for it.

        The call joins the task being filled (or starts one); the task is sent when it is
        full, when the cluster would otherwise idle, or ``max_wait`` after its first call
        arrived. Cancelling the returned future drops the call (and cancels its task on the
        cluster, without waiting for the scheduler, when no other call of that task is
        wanted). Its exception, if the call failed, is the remote one with the remote frames.
        """
        out: cf.Future[R] = cf.Future()
        self._add(_Call(fn, args, kwargs, out, None))
        return out

    def submit_async(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[R]:
        """:meth:`submit` for a caller on a running event loop: the future is that loop's.

        What a ``map`` stage on this executor uses instead of ``loop.run_in_executor``: a
        task's outcomes reach the loop in one hop (one ``call_soon_threadsafe`` per task,
        not one per call, and no ``concurrent.futures.Future`` in between). Cancelling the
        future drops the call, as with :meth:`submit`.

        Example::

            y = await ex.submit_async(score, row)
        """
        loop = asyncio.get_running_loop()
        out: asyncio.Future[R] = loop.create_future()
        self._add(_Call(fn, args, kwargs, out, loop))
        return out

    def _add(self, call: _Call) -> None:
        """Take a new call: count it, put it in the task being filled, send what is due."""
        if self._closed:
            raise DaskStageError(
                f"DaskExecutor({self.name!r}) is shut down; create a new one to submit more"
            )
        fn, args, kwargs = call.fn, call.args, call.kwargs
        if self._scattered:
            self._check_call(fn, args, kwargs)
        call.out.add_done_callback(lambda f: self._on_local_done(call, f))
        now = time.monotonic()
        with self._lock:
            self._submitted += 1
            self._outstanding.add(call)
            n = len(self._outstanding)
            if n > self._max_in_flight:
                self._max_in_flight = n
            if now - self._peak_since >= _PEAK_WINDOW:  # the stage's recent most, 1-2 s
                self._peak_before, self._peak, self._peak_since = self._peak, 0, now
            if n > self._peak:
                self._peak = n
            groups = []
            if self._pending and self._pending[0].fn is not fn:
                groups.append(self._take(len(self._pending)))  # one function per task
            call.arrived = now
            self._pending.append(call)
            self._last_submit = now
            groups += self._due(now)
            start_timer = bool(self._pending) and not self._ticking
            if start_timer:
                self._ticking = True
        loop = self._c.loop
        for group in groups:  # one hop each to the client's loop, which submits and waits
            loop.add_callback(self._run, group)
        if start_timer:
            loop.add_callback(self._tick)

    # -- grouping (all under self._lock) --------------------------------------------------------
    def _size(self) -> int | None:
        """Calls per task now: fixed, or enough for the target task time (None: not known yet)."""
        if self._fixed_size is not None:
            return self._fixed_size
        if self._item_s is None:
            return None
        target = self._task_target
        if self._overheads:  # keep the round trip's overhead below ~20% of a task's time
            target = min(max(target, 5 * min(self._overheads)), 4 * self._task_target)
        return max(1, min(_MAX_BATCH, math.ceil(target / max(self._item_s, 1e-9))))

    def _take(self, k: int, *, solo: bool = False) -> _Group:
        """The first ``k`` pending calls as a new group (counted as a task out)."""
        calls, self._pending[:k] = self._pending[:k], []
        self._seq += 1
        # a cheap unique key, named after the function like Dask's own (which costs two
        # uuid4() calls per task), so the dashboard groups the tasks the same way
        group = _Group(f"{funcname(calls[0].fn)}-{self._uid}-{self._seq}", calls, solo)
        group.queued = self._tasks_out >= self._threads
        for call in calls:
            call.group = group
        self._tasks_out += 1
        self._tasks += 1
        return group

    def _split(self, parts: int) -> list[_Group]:
        """All pending calls as ``parts`` groups of nearly equal size."""
        groups = []
        for i in range(parts, 0, -1):
            groups.append(self._take(math.ceil(len(self._pending) / i)))
        return groups

    def _due(self, now: float) -> list[_Group]:
        """The groups to send now; the rest of the pending calls wait (see the class docs).

        Full groups go at once. Before anything was measured, one call per task goes while
        fewer tasks than worker threads are out (they measure the function), the others
        wait for that measurement. A call that waited ``max_wait`` goes at once. When a
        worker thread has no task (``fill_idle``) and no more calls are coming - the stage
        holds as many calls as it ever did lately (its ``concurrency``), or none came for
        ``_QUIET`` s - what is pending goes now. Either way it goes as one task, or split
        over the worker threads that have none.
        """
        p = self._pending
        if not p:
            return []
        size = self._size()
        groups: list[_Group] = []
        if size is None:
            while p and self._tasks_out < self._threads:
                groups.append(self._take(1))
            if p and now - p[0].arrived >= self._max_wait:
                while p:  # an unknown function: one call per task is the safe guess
                    groups.append(self._take(1))
            return groups
        while len(p) >= size:
            groups.append(self._take(size))
        if not p:
            return groups
        starving = self._fill_idle and self._tasks_out < self._threads
        if (starving and (self._at_limit() or now - self._last_submit >= _QUIET)) or (
            now - p[0].arrived >= self._max_wait
        ):
            # one task of all that is pending, or one per idle worker thread if some are idle
            return groups + self._split(min(max(1, self._threads - self._tasks_out), len(p)))
        return groups

    def _at_limit(self) -> bool:
        """The stage holds as many calls as its most lately: it waits for results now."""
        return len(self._outstanding) >= max(self._peak, self._peak_before)

    def _next_tick(self, now: float) -> float | None:
        """Seconds until the pending calls need another look (None: nothing pending)."""
        if not self._pending:
            return None
        due = self._pending[0].arrived + self._max_wait
        if self._fill_idle and self._size() is not None and self._tasks_out < self._threads:
            due = min(due, self._last_submit + _QUIET)
        return max(due - now, 0.0005)

    def _tick(self) -> None:
        """On the client's loop: send what is due, look again when the next call is."""
        now = time.monotonic()
        with self._lock:
            groups = self._due(now)
            delay = self._next_tick(now)
            self._ticking = delay is not None
        for group in groups:
            self._c.loop.add_callback(self._run, group)
        if delay is not None:
            self._c.loop.call_later(delay, self._tick)
        if now - self._threads_at >= _THREADS_REFRESH:
            self._threads_at = now
            self._c.loop.add_callback(self._refresh_threads)

    async def _refresh_threads(self) -> None:
        try:
            ident = await self._c.scheduler.identity(n_workers=0)
        except Exception:
            return
        self._threads = max(1, int(ident.get("total_threads") or 1))

    # -- running a group on the client's loop ---------------------------------------------------
    async def _run(self, group: _Group) -> None:
        """On the client's loop: submit the group's task, wait for it, let go, hand over.

        The Dask future is released before the outcomes are handed over. The release
        reaches the client's send queue in one more hop on this loop (``Future.release``
        schedules it); the stage's next calls can only be submitted after outcomes arrive,
        and their task is queued on this loop behind that hop, so the scheduler always sees
        the release first and never holds more of the stage's tasks than its calls.
        """
        if group.live == 0:  # every call was cancelled before the task was sent
            self._group_done(group, None, 0.0, 0.0)
            return
        try:
            calls = [(c.args, c.kwargs) for c in group.calls]
            group.dfut = self._c.submit(
                run_calls, group.calls[0].fn, calls, self._scattered, key=group.key, pure=False
            )
        except BaseException as exc:  # an item that does not pickle, a closed client...
            self._group_done(group, None, 0.0, 0.0)
            if len(group.calls) > 1 and isinstance(exc, Exception) and not self._closing():
                self._run_alone(group)  # so that only the culprit fails
            else:
                self._fail_all(group, exc)
            return
        t0 = time.perf_counter()
        outcomes: list[Outcome] | None = None
        waited = 0.0
        error: BaseException | None = None
        try:
            outcomes, waited = await self._c.gather(group.dfut, asynchronous=True)
        except asyncio.CancelledError:  # the client's loop is closing under us
            error = DaskStageError(
                f"DaskExecutor({self.name!r}): the Dask client stopped waiting for task "
                f"{group.key!r} (was the client closed while the stage ran?)"
            )
            raise
        except BaseException as exc:
            error = exc  # the whole task failed (or was cancelled because nobody wants it)
        finally:
            group.dfut.release()  # now, whoever else refers to it
            group.dfut = None
            self._group_done(group, outcomes, time.perf_counter() - t0, waited)
            if outcomes is not None:
                self._hand_over(group, outcomes)
            elif error is not None and group.live:
                if len(group.calls) > 1 and not isinstance(error, DaskStageError):
                    self._run_alone(group)  # find the culprit: each call once on its own
                else:
                    self._fail_all(group, _remote_only(error))

    def _group_done(
        self, group: _Group, outcomes: list[Outcome] | None, wall: float, waited: float
    ) -> None:
        """A group's task is over: count it, learn from its timings, send what is now due.

        A call's time is what it took on the worker less the worker's wait for a CPU core
        (``waited``, spread over the task's calls): on cores busy with other work a task
        would otherwise get fewer calls exactly when its fixed cost - CPU too - hurts most.
        """
        now = time.monotonic()
        with self._lock:
            self._tasks_out -= 1
            self._wake_if_idle()
            if outcomes is not None:
                run = sum(o[2] for o in outcomes)
                self._tasks_done += 1
                self._task_items += len(outcomes)
                self._task_run += run
                per_item = max(run - waited, 0.0) / len(outcomes)
                self._item_s = (
                    per_item if self._item_s is None else 0.7 * self._item_s + 0.3 * per_item
                )
                if not group.queued:  # a round trip without waiting for a worker thread
                    self._overheads.append(max(wall - run, 0.0))
            groups = self._due(now)
            start_timer = bool(self._pending) and not self._ticking
            if start_timer:
                self._ticking = True
        for g in groups:
            self._c.loop.add_callback(self._run, g)
        if start_timer:
            self._c.loop.add_callback(self._tick)

    def _hand_over(self, group: _Group, outcomes: list[Outcome]) -> None:
        hops = _Hops()
        for call, (ok, value, _) in zip(group.calls, outcomes, strict=True):
            if not self._settle(call, "completed" if ok else "failed"):
                continue  # cancelled meanwhile: its result is dropped
            if not ok:
                exc, tb = value
                if tb is not None:
                    exc = exc.with_traceback(Traceback.from_dict(tb).as_traceback())
                value = exc
            hops.deliver(call, ok, value)
        hops.send()

    def _fail_all(self, group: _Group, exc: BaseException) -> None:
        hops = _Hops()
        for call in group.calls:
            if self._settle(call, "failed"):
                hops.deliver(call, False, exc)
        hops.send()

    def _closing(self) -> bool:
        return bool(self._c.status in ("closing", "closed"))

    def _run_alone(self, group: _Group) -> None:
        with self._lock:
            solos: list[_Group] = []
            for call in group.calls:
                if call in self._outstanding:
                    solo = _Group(f"{group.key}-{len(solos)}", [call], True)
                    call.group = solo
                    self._tasks_out += 1
                    self._tasks += 1
                    solos.append(solo)
        for solo in solos:
            self._c.loop.add_callback(self._run, solo)

    def _settle(self, call: _Call, outcome: str) -> bool:
        """Count a call's outcome once; False when it was settled (cancelled) already."""
        with self._lock:
            if call not in self._outstanding:
                return False
            self._outstanding.discard(call)
            if outcome == "completed":
                self._completed += 1
            elif outcome == "failed":
                self._failed += 1
            else:
                self._cancelled += 1
            if call.group is None:  # still pending: it leaves the task being filled
                self._pending.remove(call)
            else:
                call.group.live -= 1
            self._wake_if_idle()
        return True

    def _wake_if_idle(self) -> None:
        """(Under the lock.) No call outstanding and no Dask future held: wake the waiters
        of shutdown/aclose."""
        if not self._outstanding and not self._tasks_out:
            self._idle.notify_all()
            waiters, self._idle_waiters = self._idle_waiters, []
            for loop, idle in waiters:
                loop.call_soon_threadsafe(_wake, idle)

    def _on_local_done(self, call: _Call, f: cf.Future[Any] | asyncio.Future[Any]) -> None:
        if f.cancelled():
            self._cancelled_here(call)

    def _cancelled_here(self, call: _Call) -> None:
        if self._settle(call, "cancelled"):
            group = call.group
            if group is not None and group.live == 0:
                self._c.loop.add_callback(self._cancel_remote, group)

    async def _cancel_remote(self, group: _Group) -> None:
        # on the client's loop, like _run: either _run has not started (it will see that no
        # call is wanted and submit nothing) or the task is submitted and group.dfut is set
        # (or already settled and cleared)
        if group.dfut is not None:
            await self._c.cancel(
                [group.dfut], asynchronous=True, reason="streamnb: stage cancelled"
            )

    def _cancel_all(self) -> None:
        with self._lock:
            entries = list(self._outstanding)
        for call in entries:
            if call.loop is None:
                call.out.cancel()  # -> _on_local_done -> the Dask future is cancelled too
            else:
                # an asyncio future runs its callbacks later, on its loop (perhaps the one
                # blocked in shutdown(wait=True)): settle now, cancel it there
                self._cancelled_here(call)
                _soon(call.loop, call.out.cancel)

    def _flush(self) -> None:
        """Send every pending call now (nothing more will join them)."""
        with self._lock:
            if not self._pending:
                return
            groups = self._split(max(1, min(len(self._pending), self._threads)))
        for group in groups:
            self._c.loop.add_callback(self._run, group)

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
        else:
            self._flush()  # no call will join the pending ones: send them now
        if wait:
            with self._idle:
                self._idle.wait_for(lambda: not self._outstanding and not self._tasks_out)
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
            if self._outstanding or self._tasks_out:
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
        """Calls held right now (submitted and not yet settled or cancelled)."""
        return len(self._outstanding)

    @property
    def max_in_flight(self) -> int:
        """The most calls this executor has held at once (never above the stage's concurrency)."""
        return self._max_in_flight

    @property
    def preferred_concurrency(self) -> int:
        """The ``map(concurrency=...)`` that lets this executor fill its tasks: (calls per
        task) x 2 x (worker threads) from the latest measurements (``2 x threads`` until
        something was measured; the threads are the scheduler's count, looked up when the
        executor is made and every ~2 s while calls wait). A ``map`` on this executor without
        ``concurrency=`` follows it through its run; a user may print it after a first run.
        """
        with self._lock:
            size = self._size() or 1
            return size * 2 * self._threads

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
            done = self._tasks_done
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
                tasks=self._tasks,
                tasks_in_flight=self._tasks_out,
                items_per_task=self._task_items / done if done else None,
                task_seconds=self._task_run / done if done else None,
                item_seconds=self._item_s,
                overhead_seconds=min(self._overheads) if self._overheads else None,
                batch_size=self._size(),
            )

    def snapshot(self) -> DaskStageInfo:
        """The same as :meth:`info`: the name a dashboard's ``Observable`` reader calls."""
        return self.info()

    def task_snapshot(self) -> TaskSnapshot:
        """The grouping figures as a :class:`~streamnb.metrics.TaskSnapshot` (totals since
        this executor was made; cheap: no call to the scheduler). A stage that runs on this
        executor puts them, counted from the stage's start, in its ``ConcurrencySnapshot``
        (``it.stages[name].tasks``), which is what the run and the dashboard show."""
        with self._lock:
            return TaskSnapshot(
                sent=self._tasks,
                in_flight=self._tasks_out,
                done=self._tasks_done,
                calls=self._task_items,
                run_seconds=self._task_run,
                overhead_seconds=min(self._overheads) if self._overheads else None,
                batch_size=self._size(),
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


def _per_task(info: DaskStageInfo) -> str:
    if info.items_per_task is None or info.task_seconds is None:
        return ""
    return f" ({info.items_per_task:.1f} per task, {info.task_seconds * 1000:.0f} ms each)"


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _deliver(setter: Callable[[Any], None], value: Any) -> None:
    try:
        setter(value)
    except cf.InvalidStateError:  # cancelled locally meanwhile: nobody waits for it
        pass


class _Hops:
    """The outcomes of one task for their futures: a ``concurrent.futures`` future is
    resolved at once; the asyncio futures of each loop in one ``call_soon_threadsafe``."""

    __slots__ = ("by_loop",)

    def __init__(self) -> None:
        self.by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}

    def deliver(self, call: _Call, ok: bool, value: Any) -> None:
        if call.loop is None:
            out = cast("cf.Future[Any]", call.out)
            _deliver(out.set_result if ok else out.set_exception, value)
        else:
            self.by_loop.setdefault(call.loop, []).append((call.out, ok, value))

    def send(self) -> None:
        for loop, batch in self.by_loop.items():
            _soon(loop, _resolve, batch)


def _soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody waits for these futures any more
        pass


def _resolve(batch: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """(On the futures' loop.) Resolve each future not cancelled meanwhile."""
    for fut, ok, value in batch:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        elif isinstance(value, StopIteration):  # an asyncio future refuses to carry one
            err = RuntimeError(f"the function raised StopIteration: {value}")
            err.__cause__ = value
            fut.set_exception(err)
        else:
            fut.set_exception(value)


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
