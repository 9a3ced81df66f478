"""streamnb.dask on a real LocalCluster (2 worker processes on 127.0.0.1).

Covers results and ordering, the bound on futures held on the cluster, errors (remote
traceback, stage note, error policies), cancellation (break, task cancel, close) releasing the
cluster's futures, scatter-once, and an asynchronous client.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import dask_tasks as tasks
import pytest
from distributed import Client, LocalCluster

from streamnb import DeadLetter, RetryPolicy, Stream
from streamnb.dask import DaskExecutor, DaskStageError

pytestmark = pytest.mark.timeout(120)

# the executor passes the scattered ``model=`` keyword; to the Stream it is a one-argument call
_use_model = cast(Callable[[int], tuple[int, int, int]], tasks.use_model)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "port in use" style notices of a fresh cluster
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        )
    c = Client(cluster)  # type: ignore[no-untyped-call]
    try:
        yield c
    finally:
        c.close()  # type: ignore[no-untyped-call]
        cluster.close()


def _scheduler_keys(client: Client, prefix: str) -> list[str]:
    """Keys the scheduler still knows whose task name starts with ``prefix``."""

    def keys(dask_scheduler: Any, prefix: str) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith(prefix)]

    return list(client.run_on_scheduler(keys, prefix=prefix))  # type: ignore[no-untyped-call]


def _client_keys(client: Client, prefix: str) -> list[str]:
    return [str(k) for k in list(client.futures) if str(k).startswith(prefix)]


def _no_other_tasks() -> None:
    """Nothing of the run is left pending on this test's event loop."""
    left = asyncio.all_tasks() - {asyncio.current_task()}
    assert not left, left


async def _released(client: Client, prefix: str, ex: DaskExecutor | None = None) -> None:
    """Wait (bounded) until neither the client nor the scheduler holds a ``prefix`` key."""
    for _ in range(400):
        gc.collect()
        busy = (ex is not None and ex.in_flight) or _client_keys(client, prefix)
        if not busy and not _scheduler_keys(client, prefix):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(
        f"still held after 10 s: client {_client_keys(client, prefix)}, "
        f"scheduler {_scheduler_keys(client, prefix)}, executor {ex!r}"
    )


async def test_ordered_results_come_back_in_input_order(client: Client) -> None:
    async with DaskExecutor(client, name="ordered") as ex:
        out = await Stream(range(12)).map(tasks.square_late, executor=ex, concurrency=4).collect()
        assert out == [x * x for x in range(12)]
    info = ex.info()
    assert (info.submitted, info.completed, info.failed, info.in_flight) == (12, 12, 0, 0)
    assert 1 <= info.max_in_flight <= 4
    assert info.closed
    await _released(client, "square_late")


async def test_unordered_results_are_all_there(client: Client) -> None:
    async with DaskExecutor(client) as ex:
        s = Stream(range(12)).map(tasks.square_late, executor=ex, concurrency=4, ordered=False)
        out = await s.collect()
    assert sorted(out) == [x * x for x in range(12)]


async def test_never_more_than_concurrency_futures_on_the_cluster(client: Client) -> None:
    seen: list[int] = []

    def sample(_: Any) -> None:
        seen.append(len(_scheduler_keys(client, "busy")))

    async with DaskExecutor(client, name="bounded") as ex:
        s = Stream(range(30)).map(tasks.busy, executor=ex, concurrency=3).tap(sample)
        assert await s.collect() == list(range(1, 31))
        assert ex.max_in_flight == 3  # the stage filled its window ...
    assert max(seen) <= 3  # ... and the scheduler never held more of its tasks than that
    assert len(seen) == 30
    await _released(client, "busy")


async def test_remote_exception_with_remote_traceback_and_stage_note(client: Client) -> None:
    async with DaskExecutor(client) as ex:
        s = Stream(range(6)).map(tasks.fail_on_three, executor=ex, concurrency=2)
        with pytest.raises(ValueError, match="item 3 is bad") as caught:
            await s.collect()
    err = caught.value
    worker_pid = int(str(err).rsplit("pid ", 1)[1].rstrip(")"))
    assert worker_pid != os.getpid()  # raised in a worker process, re-raised here
    assert any("map(fail_on_three) failed on item #3" in n for n in err.__notes__)
    text = "".join(traceback.format_exception(err))
    assert "dask_tasks.py" in text and "in fail_on_three" in text  # the worker's frame
    assert f"{os.sep}distributed{os.sep}client.py" not in text  # local waiting frames cut
    del err, caught
    await _released(client, "fail_on_three")  # a kept exception would not pin the task


async def test_skip_policy_puts_remote_failures_in_the_dead_letter(client: Client) -> None:
    dl: DeadLetter[int] = DeadLetter()
    async with DaskExecutor(client) as ex:
        s = Stream(range(6)).map(
            tasks.fail_on_three, executor=ex, concurrency=3, on_error="skip", dead_letter=dl
        )
        assert await s.collect() == [0, 1, 2, 4, 5]
        assert ex.info().failed == 1
    assert dl.count == 1
    (entry,) = dl.entries
    assert (entry.stage, entry.index, entry.item) == ("map(fail_on_three)", 3, 3)
    assert isinstance(entry.error, ValueError)


async def test_retry_policy_runs_the_call_again_on_the_cluster(
    client: Client, tmp_path: Path
) -> None:
    fn = functools.partial(tasks.flaky, marker_dir=str(tmp_path))
    retry = RetryPolicy(max_attempts=3, initial=0.01, max_delay=0.05)
    async with DaskExecutor(client) as ex:
        s = Stream(range(5)).map(fn, executor=ex, concurrency=2, on_error="retry", retry=retry)
        assert await s.collect() == list(range(5))
        info = ex.info()
    # every item failed once and was run again as a new task (not a cached failure)
    assert (info.failed, info.completed, info.submitted) == (5, 5, 10)


async def test_break_cancels_outstanding_futures(client: Client) -> None:
    async with DaskExecutor(client, name="break") as ex:
        async with Stream(range(20)).map(tasks.nap, executor=ex, concurrency=4).open() as it:
            async for x in it:
                assert x == 0
                assert it.stages["map(nap)"].in_flight >= 1
                break
        _no_other_tasks()
        # the stage's calls were cancelled; the cluster lets go of their futures
        await _released(client, "nap", ex)
        info = ex.info()
    assert info.cancelled >= 1 and info.completed >= 1
    assert info.submitted == info.cancelled + info.completed
    assert info.max_in_flight <= 4


async def test_cancelling_the_consumer_task_cancels_outstanding_futures(client: Client) -> None:
    ex = DaskExecutor(client, name="task-cancel")
    try:
        s = Stream(range(20)).map(tasks.nap, executor=ex, concurrency=3)
        consumer = asyncio.ensure_future(s.collect())
        for _ in range(400):
            if ex.in_flight == 3:
                break
            await asyncio.sleep(0.01)
        assert ex.in_flight == 3
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        _no_other_tasks()
        await _released(client, "nap", ex)
        assert ex.info().cancelled >= 3
    finally:
        await ex.aclose()


async def test_aclose_cancels_direct_submissions_and_refuses_new_ones(client: Client) -> None:
    ex = DaskExecutor(client, name="direct")
    assert not ex.info().closed
    futures = [ex.submit(tasks.nap, i) for i in range(3)]
    assert ex.in_flight == 3
    await ex.aclose()
    assert all(f.cancelled() for f in futures)
    assert ex.in_flight == 0 and ex.info().closed
    with pytest.raises(DaskStageError, match="shut down"):
        ex.submit(tasks.nap, 0)
    await _released(client, "nap")


async def test_scatter_sends_a_big_argument_once_per_worker(client: Client) -> None:
    model = b"m" * 4_000_000
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with DaskExecutor(client, scatter={"model": model}, name="scatter") as ex:
            (fut,) = ex._scattered.values()
            assert fut.key in client.futures  # held while the executor is open
            s = Stream(range(24)).map(_use_model, executor=ex, concurrency=4)
            out = await s.collect()
            assert ex.info().scattered == ("model",)
    assert not [w for w in caught if "Large object" in str(w.message)]  # not in any task
    assert {size for _, _, size in out} == {len(model)}
    per_worker: dict[int, set[int]] = {}
    for pid, obj_id, _ in out:
        per_worker.setdefault(pid, set()).add(obj_id)
    # every call on a worker saw the same object: it was deserialised there once
    assert all(len(ids) == 1 for ids in per_worker.values())
    await _released(client, "use_model")
    for _ in range(400):  # closing released the scattered data too
        if fut.key not in client.futures:
            break
        await asyncio.sleep(0.025)
    assert fut.key not in client.futures


async def test_scatter_keyword_the_function_cannot_take_fails_locally(client: Client) -> None:
    with pytest.raises(DaskStageError, match="must be a valid Python name"):
        DaskExecutor(client, scatter={"key": 1})
    async with DaskExecutor(client, scatter={"model": b"x"}) as ex:
        s = Stream(range(3)).map(tasks.no_model, executor=ex, concurrency=2)
        with pytest.raises(DaskStageError, match="cannot take the scattered keyword"):
            await s.collect()
        assert ex.info().submitted == 0


async def test_asynchronous_client_on_the_running_loop(client: Client) -> None:
    address = client.scheduler_info()["address"]
    async with Client(address, asynchronous=True) as aclient:  # type: ignore[no-untyped-call]
        model = await aclient.scatter(b"abc", broadcast=True)
        with pytest.raises(DaskStageError, match="scatter it yourself"):
            DaskExecutor(aclient, scatter={"model": b"abc"})
        async with DaskExecutor(aclient, scatter={"model": model}) as ex:
            out = await Stream(range(6)).map(_use_model, executor=ex, concurrency=3).collect()
            with pytest.raises(DaskStageError, match="aclose"):
                ex.submit(_use_model, 0)
                ex.shutdown(wait=True)
            assert ex.in_flight == 1 and not ex.info().closed  # refused, nothing changed
        assert [size for _, _, size in out] == [3] * 6


async def test_info_carries_the_dashboard_link(client: Client) -> None:
    async with DaskExecutor(client) as ex:
        info = ex.info()
    assert info.dashboard_link == client.dashboard_link
    assert info.dashboard_link is not None
    assert info.dashboard_link.startswith("http://127.0.0.1:")
    assert "in flight" in str(info) and info.as_dict()["dashboard_link"] == info.dashboard_link
    assert ex.dashboard_link == info.dashboard_link  # what a run's concurrency snapshot reads
    with pytest.raises(AttributeError):
        ex.dashboard_link = "http://elsewhere"  # type: ignore[misc]


async def test_the_run_reports_the_executor_and_its_dashboard_link(client: Client) -> None:
    """A Dask stage's figures reach the dashboard through the run's concurrency snapshot."""
    from streamnb.metrics import ConcurrencySnapshot
    from streamnb.notebook._format import concurrent_html

    async with DaskExecutor(client, name="cluster") as ex:
        s = Stream(range(12)).map(tasks.busy, executor=ex, concurrency=3, name="remote")
        async with s.open() as it:
            async for _ in it:
                pass
            snap = it.snapshots("concurrency")["remote"]
    assert isinstance(snap, ConcurrencySnapshot)
    assert snap.executor == "cluster" and snap.concurrency == 3
    assert snap.completed == 12 and 1 <= snap.max_in_flight <= 3
    assert snap.dashboard_link == client.dashboard_link
    html = concurrent_html([snap])
    assert f'href="{client.dashboard_link}"' in html and "· cluster" in html


async def test_a_notebook_run_shows_the_grouping_beside_the_cluster_link(client: Client) -> None:
    """What the dashboard's concurrent-stage row shows comes from the run's snapshot alone."""
    from streamnb.metrics import ConcurrencySnapshot
    from streamnb.notebook import start
    from streamnb.notebook._format import concurrent_html

    async with DaskExecutor(client, name="cluster", batch_size=4) as ex:
        s = Stream(range(24)).map(tasks.busy, executor=ex, name="remote")
        handle = start(s, name="dask-grouping", display=False)
        summary = await handle
        snap = handle.snapshots("concurrency")["remote"]  # the final snapshot, after the run
    assert summary.items == 24
    assert isinstance(snap, ConcurrencySnapshot) and snap.tasks is not None
    assert snap.concurrency == 4 * 2 * 2  # no concurrency given: the executor's preference
    assert snap.tasks.calls == 24 and snap.tasks.in_flight == 0
    assert snap.tasks.items_per_task == 24 / snap.tasks.done and snap.tasks.done <= 24 / 2
    assert snap.tasks.task_seconds is not None and snap.tasks.task_seconds >= 0.02
    html = concurrent_html([snap])
    assert f'href="{client.dashboard_link}"' in html
    assert f"{snap.tasks.sent} tasks ({snap.tasks.items_per_task:.1f} per task, " in html
    assert "0 on the cluster" in html


def test_no_process_wide_registry_of_executors() -> None:
    import streamnb.dask as module

    assert not hasattr(module, "stage_infos") and not hasattr(module, "_live")


_LOG_SCRIPT = """
import logging, sys
from distributed import Client, LocalCluster
if sys.argv[1] == "configured":
    import structlog
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
    )
from streamnb.dask import DaskExecutor
with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
    with Client(cluster) as client:
        with DaskExecutor(client, name="quiet") as ex:
            assert ex.submit(abs, -3).result(timeout=30) == 3
print("ran")
"""


@pytest.mark.parametrize("mode", ["default", "configured"])
def test_info_events_print_only_when_logging_asks_for_them(mode: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _LOG_SCRIPT, mode], capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ran" in out.stdout
    printed = out.stdout + out.stderr
    if mode == "default":  # a notebook that set up nothing: no info line in its cell
        assert "streamnb.dask" not in printed, printed[-2000:]
    else:
        assert "event='streamnb.dask.open'" in out.stdout, printed[-2000:]
        assert "event='streamnb.dask.close'" in out.stdout


def test_import_streamnb_does_not_import_distributed() -> None:
    code = "import sys, streamnb; assert 'distributed' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
