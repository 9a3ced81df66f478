"""DaskExecutor's grouping of calls into tasks, on a real LocalCluster (2 worker processes).

Covers: results in order (and unordered) with many calls per task, a failing call not
failing its task-mates, a retry re-running only the failing call, cancellation of pending
and of sent calls releasing everything, the latency cap with a slow source, the figures, a
BaseException raised by user code, and a task that fails as a whole.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dask_tasks as tasks
import pytest
from distributed import Client, LocalCluster

from streamnb import ArgumentTypeError, DeadLetter, InvalidArgumentError, RetryPolicy, Stream
from streamnb.dask import DaskExecutor

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    c = Client(cluster)  # type: ignore[no-untyped-call]
    # the workers import the test functions now, not during the first measured call
    c.run(tasks.quick, 0)  # type: ignore[no-untyped-call]
    try:
        yield c
    finally:
        c.close()  # type: ignore[no-untyped-call]
        cluster.close()


def _scheduler_keys(client: Client, prefix: str) -> list[str]:
    def keys(dask_scheduler: Any, prefix: str) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith(prefix)]

    return list(client.run_on_scheduler(keys, prefix=prefix))  # type: ignore[no-untyped-call]


async def _released(client: Client, prefix: str, ex: DaskExecutor) -> None:
    """Wait (bounded) until neither the executor, the client nor the scheduler holds a task."""
    for _ in range(400):
        client_keys = [k for k in list(client.futures) if str(k).startswith(prefix)]
        if not ex.in_flight and not client_keys and not _scheduler_keys(client, prefix):
            assert ex.info().tasks_in_flight == 0
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"still held after 10 s: {ex.info()}, {_scheduler_keys(client, prefix)}")


def _no_other_tasks() -> None:
    left = asyncio.all_tasks() - {asyncio.current_task()}
    assert not left, left


def _calls(marker_dir: Path) -> dict[int, int]:
    return {int(p.name): p.read_text().count("call") for p in marker_dir.iterdir()}


async def test_many_calls_per_task_results_in_input_order(client: Client) -> None:
    async with DaskExecutor(client, name="grouped") as ex:
        out = await Stream(range(300)).map(tasks.quick, executor=ex, concurrency=64).collect()
        assert out == [x * x for x in range(300)]
        info = ex.info()
    # ~2 ms calls: the executor measured them and packed many into each task
    assert info.tasks < 300 / 3, info
    assert info.items_per_task is not None and info.items_per_task > 3
    assert info.batch_size is not None and info.batch_size > 4
    assert info.item_seconds is not None and 0.0015 < info.item_seconds < 0.2
    assert info.task_seconds is not None and info.task_seconds > 4 * 0.0015
    assert (info.submitted, info.completed, info.failed, info.cancelled) == (300, 300, 0, 0)
    assert info.max_in_flight <= 64
    assert "per task" in str(info) and info.as_dict()["tasks"] == info.tasks
    assert ex.snapshot().tasks == info.tasks
    # enough calls for its tasks: (calls per task) x 2 x (2 worker threads)
    assert ex.preferred_concurrency == info.batch_size * 4
    await _released(client, "quick", ex)


async def test_the_stages_snapshot_shows_how_its_calls_were_grouped(client: Client) -> None:
    from streamnb.metrics import ConcurrencySnapshot
    from streamnb.notebook._format import concurrent_lines

    runs: list[ConcurrencySnapshot] = []
    # groups of exactly 5: only a full group is sent (no early task, no latency cap)
    async with DaskExecutor(client, name="seen", batch_size=5, fill_idle=False, max_wait=30) as ex:
        for _ in range(2):  # a second run on the same executor counts only its own tasks
            s = Stream(range(40)).map(tasks.quick, executor=ex, concurrency=20, name="sq")
            async with s.open() as it:
                assert [y async for y in it] == [x * x for x in range(40)]
            snap = it.snapshots("concurrency")["sq"]  # read after the run ended
            assert isinstance(snap, ConcurrencySnapshot)
            assert it.stages["sq"].tasks == snap.tasks  # the same figures, both ways
            runs.append(snap)
        total = ex.task_snapshot()
    sent = []
    for snap in runs:
        assert (snap.executor, snap.started, snap.completed) == ("seen", 40, 40)
        t = snap.tasks
        assert t is not None
        assert (t.sent, t.done, t.calls, t.in_flight) == (8, 8, 40, 0)
        assert t.items_per_task == 5.0 and t.batch_size == 5
        # quick() sleeps 2 ms per call on the worker: a task ran at least that per call
        assert t.run_seconds >= 40 * 0.002 and t.task_seconds == t.run_seconds / 8
        # (a round trip's cost: milliseconds on a quiet machine, seconds on a loaded one)
        assert t.overhead_seconds is not None and t.overhead_seconds > 0
        assert f"{t.sent} tasks ({t.items_per_task:.1f} per task, " in concurrent_lines([snap])[0]
        sent.append(t.sent)
    assert total.calls == 80 and total.sent == sum(sent)  # the executor's own totals
    assert ex.info().items_per_task == 80 / total.done


async def test_without_concurrency_the_stage_takes_the_executors_preferred_concurrency(
    client: Client,
) -> None:
    async with DaskExecutor(client, name="fixed", batch_size=5) as ex:
        s = Stream(range(200)).map(tasks.quick, executor=ex, name="sq")
        async with s.open() as it:
            assert [y async for y in it] == [x * x for x in range(200)]
            snap = it.stages["sq"]
        # 5 calls per task x 2 tasks per worker thread x 2 worker threads
        assert ex.preferred_concurrency == 20
        assert snap.concurrency == 20 and snap.max_in_flight == 20
        assert snap.tasks is not None and snap.tasks.items_per_task is not None
        assert snap.tasks.items_per_task > 2
        # an explicit concurrency wins
        s = Stream(range(40)).map(tasks.quick, executor=ex, concurrency=3, name="sq")
        async with s.open() as it:
            assert [y async for y in it] == [x * x for x in range(40)]
            snap = it.stages["sq"]
        assert snap.concurrency == 3 and snap.max_in_flight <= 3


async def test_without_concurrency_the_stage_grows_once_the_executor_measured(
    client: Client,
) -> None:
    async with DaskExecutor(client, name="adaptive") as ex:
        s = Stream(range(400)).map(tasks.quick, executor=ex, name="sq")
        async with s.open() as it:
            # nothing measured yet: 2 calls per worker thread (the executor may not have
            # heard of the second worker yet)
            assert it.stages["sq"].concurrency in (2, 4)
            assert [y async for y in it] == [x * x for x in range(400)]
            snap = it.stages["sq"]
    # ~2 ms calls: many per task, and the stage gave the executor enough of them
    assert snap.tasks is not None and snap.tasks.items_per_task is not None
    assert snap.tasks.items_per_task >= 4, snap
    assert snap.concurrency >= 4 * 2 * 2 and snap.max_in_flight > 4 * 2 * 2, snap


async def test_unordered_with_groups_has_every_result(client: Client) -> None:
    async with DaskExecutor(client, batch_size=7) as ex:
        s = Stream(range(100)).map(tasks.square_late, executor=ex, concurrency=28, ordered=False)
        out = await s.collect()
        assert ex.info().items_per_task is not None
        assert ex.info().tasks < 100 / 3
    assert sorted(out) == [x * x for x in range(100)]


async def test_a_failing_call_does_not_fail_its_task_mates(client: Client) -> None:
    dl: DeadLetter[int] = DeadLetter()
    # a fixed group size and a long cap: 0-7 and 8-15 are exactly two tasks
    async with DaskExecutor(client, batch_size=8, max_wait=30, fill_idle=False) as ex:
        s = Stream(range(16)).map(
            tasks.fail_on_three, executor=ex, concurrency=16, on_error="skip", dead_letter=dl
        )
        assert await s.collect() == [x for x in range(16) if x != 3]
        info = ex.info()
    assert (info.tasks, info.items_per_task, info.failed, info.completed) == (2, 8.0, 1, 15)
    (entry,) = dl.entries
    assert (entry.stage, entry.index, entry.item) == ("map(fail_on_three)", 3, 3)
    assert isinstance(entry.error, ValueError) and "item 3 is bad" in str(entry.error)
    frames = traceback.extract_tb(entry.error.__traceback__)
    assert frames[-1].name == "fail_on_three"  # the worker's frame came along
    assert frames[-1].filename.endswith("dask_tasks.py")


async def test_retry_runs_only_the_failing_call_again(client: Client, tmp_path: Path) -> None:
    fn = functools.partial(tasks.fail_once_on_three, marker_dir=str(tmp_path))
    retry = RetryPolicy(max_attempts=3, initial=0.01, max_delay=0.05)
    async with DaskExecutor(client, batch_size=6, max_wait=0.2, fill_idle=False) as ex:
        s = Stream(range(12)).map(fn, executor=ex, concurrency=12, on_error="retry", retry=retry)
        assert await s.collect() == list(range(12))
        info = ex.info()
    calls = _calls(tmp_path)
    assert calls == {x: 2 if x == 3 else 1 for x in range(12)}  # its task-mates ran once
    assert (info.submitted, info.completed, info.failed) == (13, 12, 1)
    assert info.tasks == 3  # two groups of six, then item 3 alone


async def test_cancelling_a_call_before_its_task_is_sent_removes_it(
    client: Client, tmp_path: Path
) -> None:
    fn = functools.partial(tasks.record, marker_dir=str(tmp_path))
    async with DaskExecutor(
        client, name="pending", batch_size=4, max_wait=30, fill_idle=False
    ) as ex:
        first = [ex.submit(fn, i) for i in range(3)]  # a group of 4 is not full: they wait
        assert ex.info().tasks == 0 and ex.in_flight == 3
        assert first[1].cancel()
        assert ex.in_flight == 2
        more = [ex.submit(fn, i) for i in (10, 11)]  # 0, 2, 10, 11: full, sent
        done = await asyncio.gather(*(asyncio.wrap_future(f) for f in [first[0], first[2], *more]))
        assert done == [0, 2, 10, 11]
        info = ex.info()
    assert sorted(_calls(tmp_path)) == [0, 2, 10, 11]  # item 1 never reached a worker
    assert (info.tasks, info.items_per_task, info.cancelled, info.completed) == (1, 4.0, 1, 4)
    await _released(client, "record", ex)


async def test_break_releases_running_and_pending_groups(client: Client) -> None:
    async with DaskExecutor(client, name="break", batch_size=2) as ex:
        async with Stream(range(40)).map(tasks.nap, executor=ex, concurrency=12).open() as it:
            async for x in it:
                assert x == 0
                assert ex.info().tasks_in_flight >= 1
                break
        _no_other_tasks()
        await _released(client, "nap", ex)
        info = ex.info()
    assert info.cancelled >= 1
    assert info.submitted == info.cancelled + info.completed
    assert info.tasks_in_flight == 0


async def test_cancelling_the_consumer_releases_its_groups(client: Client) -> None:
    ex = DaskExecutor(client, name="consumer", batch_size=2)
    try:
        s = Stream(range(40)).map(tasks.nap, executor=ex, concurrency=8)
        consumer = asyncio.ensure_future(s.collect())
        for _ in range(400):
            if ex.in_flight == 8:
                break
            await asyncio.sleep(0.01)
        assert ex.in_flight == 8 and ex.info().tasks_in_flight >= 4  # 8 calls, <= 2 a task
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        _no_other_tasks()
        await _released(client, "nap", ex)
        info = ex.info()
        assert info.cancelled >= 4 and info.submitted == info.cancelled + info.completed
    finally:
        await ex.aclose()
    assert ex.info().tasks_in_flight == 0  # aclose returned with no Dask future held


async def test_a_slow_source_is_not_held_back_for_a_full_group(client: Client) -> None:
    produced: dict[int, float] = {}

    async def slow() -> AsyncIterator[int]:
        for i in range(4):
            await asyncio.sleep(0.4)
            produced[i] = time.monotonic()
            yield i

    latencies: list[float] = []
    # groups of 50 would take 20 s of this source to fill; the cap is 0.1 s (and only the
    # cap sends: no early task for an idle cluster)
    async with DaskExecutor(client, batch_size=50, max_wait=0.1, fill_idle=False) as ex:
        s = Stream(slow()).map(tasks.quick, executor=ex, concurrency=64)
        async with s.open() as it:
            i = 0
            async for y in it:
                assert y == i * i
                latencies.append(time.monotonic() - produced[i])
                i += 1
        info = ex.info()
    assert len(latencies) == 4
    assert min(latencies) >= 0.1, latencies  # each waited for the cap ...
    assert max(latencies) < 3.0, latencies  # ... and went out alone, long before 50 arrived
    assert info.tasks == 4 and info.items_per_task == 1.0


async def test_a_cancelled_error_raised_by_user_code_is_a_failed_call(client: Client) -> None:
    dl: DeadLetter[int] = DeadLetter()
    async with DaskExecutor(client, batch_size=5, max_wait=30, fill_idle=False) as ex:
        s = Stream(range(5)).map(
            tasks.cancelled_on_two, executor=ex, concurrency=5, on_error="skip", dead_letter=dl
        )
        assert await s.collect() == [0, 1, 3, 4]
    (entry,) = dl.entries
    assert isinstance(entry.error, RuntimeError)
    assert "CancelledError" in str(entry.error) and "user code raised it" in str(entry.error)


async def test_a_task_that_fails_as_a_whole_runs_its_calls_alone(client: Client) -> None:
    dl: DeadLetter[Any] = DeadLetter()
    items: list[Any] = [0, 1, 2, 3, 4, threading.Lock(), 6, 7]  # 5 cannot be pickled
    async with DaskExecutor(client, batch_size=8, max_wait=30, fill_idle=False) as ex:
        s = Stream(items).map(
            tasks.ident, executor=ex, concurrency=8, on_error="skip", dead_letter=dl
        )
        assert await s.collect() == [0, 1, 2, 3, 4, 6, 7]
        info = ex.info()
    (entry,) = dl.entries  # only the culprit failed
    assert entry.index == 5 and "Could not serialize" in str(entry.error)
    assert info.tasks == 1 + 8  # the task that could not be sent, then each call alone
    assert (info.completed, info.failed) == (7, 1)


async def test_shutdown_sends_what_is_pending(client: Client) -> None:
    ex = DaskExecutor(client, batch_size=10, max_wait=30, fill_idle=False)
    futures = [ex.submit(tasks.quick, i) for i in range(3)]
    assert ex.info().tasks == 0
    await asyncio.to_thread(ex.shutdown, wait=True)
    assert [f.result() for f in futures] == [0, 1, 4]
    assert ex.info().tasks in (1, 2)  # one task, or one per worker thread: not one per call


def test_grouping_arguments_are_checked(client: Client) -> None:
    with pytest.raises(InvalidArgumentError, match=r"DaskExecutor\(batch_size=0\)"):
        DaskExecutor(client, batch_size=0)
    with pytest.raises(InvalidArgumentError, match=r"max_wait=nan"):
        DaskExecutor(client, max_wait=float("nan"))
    with pytest.raises(InvalidArgumentError, match=r"task_seconds"):
        DaskExecutor(client, task_seconds=0)
    with pytest.raises(ArgumentTypeError, match=r"fill_idle='no'"):
        DaskExecutor(client, fill_idle="no")  # type: ignore[arg-type]


async def test_submit_async_resolves_futures_of_the_running_loop(client: Client) -> None:
    async with DaskExecutor(client, name="aio", batch_size=3, max_wait=30, fill_idle=False) as ex:
        futures = [ex.submit_async(tasks.fail_on_three, i) for i in range(6)]
        assert all(isinstance(f, asyncio.Future) for f in futures)
        done = await asyncio.gather(*futures, return_exceptions=True)
        info = ex.info()
    assert done[:3] == [0, 1, 2] and done[4:] == [4, 5]
    assert isinstance(done[3], ValueError) and "item 3 is bad" in str(done[3])
    frames = traceback.extract_tb(done[3].__traceback__)
    assert frames[-1].name == "fail_on_three"  # the worker's frame came along
    assert (info.tasks, info.completed, info.failed) == (2, 5, 1)


async def test_cancelling_an_async_call_before_its_task_is_sent_removes_it(
    client: Client, tmp_path: Path
) -> None:
    fn = functools.partial(tasks.record, marker_dir=str(tmp_path))
    async with DaskExecutor(
        client, name="aio-pending", batch_size=3, max_wait=30, fill_idle=False
    ) as ex:
        first = [ex.submit_async(fn, i) for i in range(2)]
        first[1].cancel()
        await asyncio.sleep(0)  # the cancellation reaches the executor on the loop
        assert ex.in_flight == 1 and ex.info().cancelled == 1
        more = [ex.submit_async(fn, i) for i in (10, 11)]  # 0, 10, 11: full, sent
        assert await asyncio.gather(first[0], *more) == [0, 10, 11]
    assert sorted(_calls(tmp_path)) == [0, 10, 11]  # item 1 never reached a worker
    await _released(client, "record", ex)


async def test_shutdown_on_the_loop_cancels_async_calls_without_waiting_for_it(
    client: Client,
) -> None:
    ex = DaskExecutor(client, name="aio-shutdown", batch_size=2)
    futures = [ex.submit_async(tasks.nap, i) for i in range(4)]
    # as soon as the calls are on the cluster (in 2 to 4 tasks: idle threads may split a
    # group), and long before their 1 s naps end
    for _ in range(400):
        info = ex.info()
        if info.tasks_in_flight > 0 and info.in_flight == 4:
            break
        await asyncio.sleep(0.01)
    assert ex.info().tasks_in_flight > 0 and ex.info().completed == 0
    # blocks this loop until the cluster let go: the asyncio futures' callbacks cannot run
    # meanwhile, so the executor settles them itself
    ex.shutdown(wait=True, cancel_futures=True)
    info = ex.info()
    assert (info.in_flight, info.tasks_in_flight, info.cancelled) == (0, 0, 4)
    await asyncio.sleep(0)
    assert all(f.cancelled() for f in futures)
    await _released(client, "nap", ex)


async def test_a_stop_iteration_from_the_function_fails_its_item_instead_of_hanging(
    client: Client,
) -> None:
    dl: DeadLetter[int] = DeadLetter()
    async with DaskExecutor(client, batch_size=4, max_wait=30, fill_idle=False) as ex:
        s = Stream(range(4)).map(
            tasks.stop_on_two, executor=ex, concurrency=4, on_error="skip", dead_letter=dl
        )
        async with asyncio.timeout(60):
            assert await s.collect() == [0, 1, 3]
    (entry,) = dl.entries
    assert entry.index == 2 and isinstance(entry.error, RuntimeError)
    assert "StopIteration" in str(entry.error) and isinstance(entry.error.__cause__, StopIteration)
