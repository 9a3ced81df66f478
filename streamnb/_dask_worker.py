"""What a Dask worker runs for a :class:`streamnb.dask.DaskExecutor` group: many calls, one task.

A Dask task costs milliseconds of coordination CPU (client, scheduler, worker), so the
executor packs several ``submit(fn, x)`` calls into one task. This module is that task's
body: it runs each call in turn and captures its own outcome - the value, or the exception
with the worker's traceback - plus the seconds it took, so that one failing call never fails
the others and the executor can size the next groups from the measured time. With the
outcomes it returns the seconds the worker's thread spent waiting for a CPU core during the
task (Linux's ``/proc/thread-self/schedstat``; 0.0 where there is none): on a machine whose
cores are busy with other work each call looks slower than it is, and the executor sizes
tasks from the calls' own time, not from the contention.

It imports only the standard library and ``tblib`` (a dependency of ``distributed``, so
present on every worker). Dask sends it by reference, so the workers import it: streamnb must
be installed where they run (a ``LocalCluster``'s workers share the notebook's environment;
importing ``streamnb`` loads no optional dependency).

Example (what a worker does with a group of three calls)::

    run_calls(int, [(("1",), {}), (("x",), {}), (("3",), {})], {})
    # ([(True, 1, 2e-06), (False, (ValueError(...), {...traceback...}), 9e-06),
    #   (True, 3, 1e-06)], 0.0)
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tblib import Traceback  # type: ignore[import-untyped]

__all__ = ["Outcome", "run_calls"]

#: ``(ok, value, seconds)``: ``value`` is the result, or ``(exception, traceback dict)``.
Outcome = tuple[bool, Any, float]

_SCHEDSTAT = "/proc/thread-self/schedstat"
#: Whether this system tells a thread how long it waited for a CPU (Linux).
_HAS_SCHEDSTAT = os.path.exists(_SCHEDSTAT)


def run_calls(
    fn: Callable[..., Any],
    calls: Sequence[tuple[tuple[Any, ...], Mapping[str, Any]]],
    shared: Mapping[str, Any],
) -> tuple[list[Outcome], float]:
    """``fn(*args, **kwargs, **shared)`` for every ``(args, kwargs)`` of ``calls``, each
    outcome captured on its own, and the seconds spent waiting for a CPU meanwhile (see the
    module docs)."""
    out: list[Outcome] = []
    clock = time.perf_counter
    waited = _cpu_wait()
    for args, kwargs in calls:
        t0 = clock()
        try:
            value = fn(*args, **kwargs, **shared)
        except BaseException as exc:
            out.append((False, _portable(fn, exc), clock() - t0))
        else:
            out.append((True, value, clock() - t0))
    return out, _cpu_wait() - waited


def _cpu_wait() -> float:
    """Seconds this thread has been runnable but waiting for a CPU so far (0.0 when the
    system does not say)."""
    if not _HAS_SCHEDSTAT:
        return 0.0
    try:
        with open(_SCHEDSTAT, "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _portable(fn: Callable[..., Any], exc: BaseException) -> tuple[BaseException, Any]:
    """``exc`` and its traceback (without this module's frame) in a form that pickles.

    A ``BaseException`` that is not an ``Exception`` (a ``CancelledError``, ``SystemExit``...
    raised by the function) is reported as a ``RuntimeError`` naming it: on the notebook's
    side it must reach the stage's error policy as a failure of that call, not cancel the
    stage. An exception that cannot be pickled is reported the same way.
    """
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    tb_dict = Traceback(tb).to_dict() if tb is not None else None
    if isinstance(exc, Exception):
        try:
            pickle.dumps(exc)
        except Exception as why:
            exc = RuntimeError(
                f"{_name(fn)} raised {_describe(exc)} on the worker, which cannot be "
                f"sent back ({type(why).__name__}: {why})"
            )
    else:
        exc = RuntimeError(
            f"{_name(fn)} raised {_describe(exc)} on the worker (a BaseException that is "
            "not an Exception; reported as this error so that the stage's error policy "
            "handles it)"
        )
    return exc, tb_dict


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or type(fn).__name__)


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "<str() failed>"
    return f"{type(exc).__qualname__}({text[:500]!r})"
