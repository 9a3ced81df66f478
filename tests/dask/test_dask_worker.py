"""What a worker runs for a DaskExecutor task (``streamnb._dask_worker.run_calls``), in this
process: outcomes one by one, and the time the thread waited for a CPU core meanwhile."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from streamnb._dask_worker import run_calls


def _spin(seconds: float) -> float:
    """Burns ``seconds`` of this thread's CPU; returns the CPU it used."""
    t0 = time.thread_time()
    while time.thread_time() - t0 < seconds:
        pass
    return time.thread_time() - t0


def _hog(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def test_outcomes_one_by_one_and_no_wait_on_an_idle_path() -> None:
    outcomes, waited = run_calls(int, [(("1",), {}), (("x",), {}), (("3",), {})], {})
    assert [(ok, v if ok else type(v[0])) for ok, v, _ in outcomes] == [
        (True, 1),
        (False, ValueError),
        (True, 3),
    ]
    assert all(seconds >= 0 for _, _, seconds in outcomes)
    assert waited >= 0.0


@pytest.mark.skipif(
    not os.path.exists("/proc/thread-self/schedstat"), reason="no per-thread schedstat"
)
def test_the_wait_for_a_busy_core_is_told_apart_from_the_calls_work() -> None:
    # more CPU-bound processes than cores: this thread waits for a core part of the time
    cores = len(os.sched_getaffinity(0))
    stop_at = time.time() + 30
    ctx = multiprocessing.get_context("spawn")
    hogs = [ctx.Process(target=_hog, args=(stop_at,), daemon=True) for _ in range(cores + 1)]
    for h in hogs:
        h.start()
    try:
        time.sleep(0.5)  # the hogs are running
        outcomes, waited = run_calls(_spin, [((0.05,), {})] * 6, {})
    finally:
        for h in hogs:
            h.terminate()
            h.join()
    run = sum(seconds for _, _, seconds in outcomes)
    cpu = sum(value for _, value, _ in outcomes)
    assert waited > 0.1 * run, (run, waited, cpu)  # the calls took longer than their work ...
    assert abs((run - waited) - cpu) < 0.25 * run, (run, waited, cpu)  # ... by the wait
