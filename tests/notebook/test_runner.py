"""The runner on a real event loop with real Streams (no kernel): lifecycle, stop, pause,
replacement by name, failures, cancellation from outside, windows, text display."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from streamnb import ArgumentTypeError, InvalidArgumentError, PipelineStoppedError, Stream
from streamnb.keyed import KeyedWindowSnapshot, tumbling
from streamnb.notebook import (
    RUN_OPTION_NAMES,
    NoWindowError,
    Run,
    active_runs,
    run,
    run_sync,
    start,
)
from streamnb.notebook.runner import RunSummary


class Source:
    """An async source that records how far it got and whether it was closed."""

    def __init__(self, n: int | None = None, delay: float = 0.001) -> None:
        self.n = n
        self.delay = delay
        self.produced = 0
        self.closed = False

    async def __call__(self) -> AsyncIterator[int]:
        try:
            i = 0
            while self.n is None or i < self.n:
                await asyncio.sleep(self.delay)
                self.produced += 1
                yield i
                i += 1
        finally:
            self.closed = True


def others() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]


async def wait_for(cond: Any, limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not cond():  # noqa: ASYNC110 - polling a plain attribute of the run handle
            await asyncio.sleep(0.01)


async def test_run_returns_a_summary_with_metrics_and_the_last_item() -> None:
    s = Stream(range(10_000)).map(lambda x: x * 2).monitor("doubled").batch(100).monitor("b")
    summary = await run(s, display=False, name="t-summary")
    assert isinstance(summary, RunSummary)
    assert summary.status == "done" and summary.items == 100 and summary.error is None
    assert summary.result == [x * 2 for x in range(9900, 10_000)]
    assert list(summary.metrics) == ["doubled", "b"]
    assert summary.metrics["doubled"].items == 10_000
    assert summary.metrics["doubled"].status == "done"
    assert summary.elapsed > 0
    assert others() == []


async def test_failure_is_raised_with_status_failed() -> None:
    def boom(x: int) -> int:
        if x == 50:
            raise ValueError("bad item 50")
        return x

    handle = start(Stream(range(100)).map(boom).monitor("m"), display=False, name="t-fail")
    with pytest.raises(ValueError, match="bad item 50"):
        await handle
    assert handle.status == "failed"
    assert handle.summary is not None and handle.summary.error == "ValueError: bad item 50"
    assert handle.items == 50
    assert handle.summary.result == 49
    assert handle.metrics()["m"].status == "failed"
    with pytest.raises(ValueError, match="bad item 50"):
        await run(Stream(range(100)).map(boom), display=False, name="t-fail-fg")
    assert others() == []


async def test_stop_closes_the_stream_and_its_buffer_producer() -> None:
    src = Source()
    s = Stream(src).buffer(16, name="buf").monitor("buf").monitor("out")
    handle = start(s, display=False, name="t-stop")
    assert handle.status == "pending"
    await wait_for(lambda: handle.items >= 20)
    assert handle.status == "running"
    handle.stop()
    with pytest.raises(PipelineStoppedError, match="'t-stop' was stopped after") as info:
        await handle
    assert info.value.summary.status == "cancelled"  # type: ignore[attr-defined]
    assert handle.status == "cancelled"
    assert src.closed
    assert others() == []
    handle.stop()  # idempotent once finished


async def test_stop_while_pending_never_opens_the_stream() -> None:
    src = Source(5)
    handle = start(Stream(src), display=False, name="t-pending")
    handle.stop()
    summary = await handle.wait()
    assert summary.status == "cancelled" and summary.items == 0
    assert src.produced == 0


async def test_pause_applies_backpressure_and_resume_continues() -> None:
    src = Source(400, delay=0.0005)
    s = Stream(src).buffer(8, name="buf").monitor("buf")
    handle = start(s, display=False, name="t-pause")
    await wait_for(lambda: handle.items >= 10)
    handle.pause()
    await wait_for(lambda: handle.status == "paused")
    await asyncio.sleep(0.2)
    held, produced = handle.items, src.produced
    await asyncio.sleep(0.2)
    assert handle.items == held  # the consumer stopped pulling
    assert src.produced == produced  # ...and backpressure stopped the producer
    assert produced <= held + 8 + 2  # the buffer's capacity plus items in hand
    handle.toggle_pause()
    summary = await handle
    assert summary.status == "done" and summary.items == 400


async def test_stop_while_paused() -> None:
    src = Source()
    handle = start(Stream(src), display=False, name="t-stop-paused")
    await wait_for(lambda: handle.items >= 3)
    handle.pause()
    await wait_for(lambda: handle.status == "paused")
    handle.stop()
    assert (await handle.wait()).status == "cancelled"
    assert src.closed and others() == []


async def test_starting_under_a_running_name_stops_the_old_run_first() -> None:
    first_src, second_src = Source(), Source(50)
    first = start(Stream(first_src), display=False, name="t-same")
    await wait_for(lambda: first.items >= 3)
    assert active_runs()["t-same"] is first
    second = start(Stream(second_src), display=False, name="t-same")
    assert active_runs()["t-same"] is second
    summary = await second
    assert first.status == "cancelled" and first_src.closed
    assert summary.status == "done" and summary.items == 50
    assert "t-same" not in active_runs()
    assert others() == []


async def test_cancellation_from_outside_closes_and_propagates() -> None:
    """What a kernel interrupt does to a foreground `await run(...)` cell."""
    src = Source()
    holder: dict[str, Run] = {}

    async def cell() -> RunSummary:
        return await run(Stream(src).buffer(4).monitor("m"), display=False, name="t-outside")

    task = asyncio.get_running_loop().create_task(cell())
    await wait_for(lambda: src.produced >= 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert src.closed
    assert others() == []
    assert holder == {}


async def test_the_consumer_yields_to_the_loop_for_sync_pipelines() -> None:
    """A CPU-only pipeline must let the dashboard timer (and other cells' tasks) run."""
    ticks = 0
    seen: list[int] = []

    def spin(x: int) -> int:
        return sum(range(20)) + x

    handle = start(Stream(range(300_000)).map(spin), display=False, name="t-yield")

    async def ticker() -> None:
        nonlocal ticks
        while not handle.done:
            ticks += 1
            seen.append(handle.items)
            await asyncio.sleep(0)

    await asyncio.gather(ticker(), handle.wait())
    assert ticks > 3
    assert any(0 < n < 300_000 for n in seen)  # progress observed while running


async def test_window_to_pandas_while_running_is_bounded() -> None:
    src = Source(None, delay=0.0005)
    s = Stream(src).map(lambda i: {"i": i, "m": {"sq": i * i}}).window(last=25, name="w")
    handle = start(s, display=False, name="t-window")
    await wait_for(lambda: handle.items >= 60)
    df = handle.to_pandas()
    assert len(df) == 25
    assert list(df.columns) == ["arrived_at", "i", "m.sq"]
    assert df["i"].is_monotonic_increasing
    assert handle.window.name == "window" or handle.window is not None
    handle.stop()
    await handle.wait()
    assert len(handle.to_pandas()) == 25  # still readable after the end


async def test_no_window_is_an_actionable_error() -> None:
    handle = start(Stream(range(10)), display=False, name="t-nowin")
    await handle
    with pytest.raises(NoWindowError, match=r"add \.window\(last=N\)"):
        handle.to_pandas()
    wrong = start(Stream(range(3)).window(last=2, name="a"), display=False, window="b")
    await wrong
    with pytest.raises(NoWindowError, match="no window named 'b'"):
        _ = wrong.window


async def test_text_display_writes_progress_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    s = Stream(range(2000)).monitor("n", total=2000)
    await run(s, display="text", name="t-text", refresh=50)
    err = capsys.readouterr().err
    assert "t-text" in err
    assert "2,000/2,000 items" in err and "done" in err
    assert "  n: done, 2,000 items" in err


async def test_repr_and_mimebundle_outside_a_notebook() -> None:
    handle = start(Stream(range(5)), display=False, name="t-repr")
    await handle
    assert repr(handle).startswith("<Run t-repr [")
    assert handle._repr_mimebundle_() == {"text/plain": repr(handle)}


async def test_argument_errors() -> None:
    with pytest.raises(TypeError, match="expects a streamnb Stream"):
        start([1, 2, 3], display=False)
    with pytest.raises(ValueError, match="refresh must be > 0"):
        start(Stream(range(3)), refresh=0, display=False)
    with pytest.raises(ValueError, match="display='fancy'"):
        start(Stream(range(3)), display="fancy")  # type: ignore[typeddict-item]
    with pytest.raises(InvalidArgumentError, match="refresh must be > 0 Hz and finite, got nan"):
        start(Stream(range(3)), refresh=float("nan"), display=False)
    with pytest.raises(ArgumentTypeError, match="total must be an int"):
        start(Stream(range(3)), total=True, display=False)
    with pytest.raises(InvalidArgumentError, match="total must be >= 0"):
        await run(Stream(range(3)), total=-1, display=False)
    with pytest.raises(ArgumentTypeError, match=r"start\(\) got unknown keyword\(s\) totl"):
        start(Stream(range(3)), totl=3, display=False)  # type: ignore[call-arg]
    with pytest.raises(ArgumentTypeError, match=r"run_sync\(\) got unknown keyword\(s\) nme"):
        run_sync(Stream(range(3)), nme="x")  # type: ignore[call-arg]
    assert not active_runs(), "a refused call registered no run"


def test_run_options_is_the_one_keyword_list() -> None:
    """run/start/run_sync/Run and Stream.run/start/run_sync all take exactly RunOptions."""
    from streamnb.stream import RunOptions

    assert set(RunOptions.__annotations__) == {"name", "total", "refresh", "display", "window"}
    assert set(RunOptions.__annotations__) == RUN_OPTION_NAMES  # the runner's up-front check
    for fn in (run, start, run_sync, Run):
        params = inspect.signature(fn).parameters
        kinds = {p.name: p.kind for p in params.values()}
        assert kinds["options"] is inspect.Parameter.VAR_KEYWORD, fn
        assert len(kinds) == 2, (fn, kinds)  # stream + **options: nothing listed twice


def test_start_without_a_loop_points_to_run_sync() -> None:
    from streamnb.errors import StreamnbError

    with pytest.raises(StreamnbError, match="use run_sync"):
        start(Stream(range(3)), display=False)


def _python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_sync_in_a_script_and_inside_a_running_loop() -> None:
    out = _python(
        """
        import asyncio
        from streamnb import Stream
        s = Stream(range(1000)).map(lambda x: x + 1).monitor("m")
        print("script", s.run_sync(display=False).items)

        async def notebook_like_cell():
            # a sync call made while the loop runs, like a non-async notebook cell
            summary = Stream(range(10)).run_sync(display=False, name="inner")
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            return summary.items, summary.result, len(pending)

        print("nested", asyncio.run(notebook_like_cell()))
        """
    )
    assert out.returncode == 0, out.stderr
    assert "script 1000" in out.stdout
    assert "nested (10, 9, 0)" in out.stdout


def test_ctrl_c_in_a_script_closes_the_stream_then_raises_keyboard_interrupt() -> None:
    out = _python(
        """
        import asyncio, os, signal, threading
        from streamnb import Stream

        closed = []
        async def src():
            # Ctrl-C 0.2 s after the run first pulls from the source (a fixed delay from the
            # script's start could land before the run iterates on a slow machine)
            threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            try:
                while True:
                    await asyncio.sleep(0.001)
                    yield 1
            finally:
                closed.append(True)

        try:
            Stream(src).buffer(8).run_sync(display=False)
        except KeyboardInterrupt:
            print("interrupted closed=%s" % closed)
        """
    )
    assert out.returncode == 0, out.stderr
    assert "interrupted closed=[True]" in out.stdout


class _Boom(Iterator[int]):
    def __next__(self) -> int:
        raise OSError("disk gone")


async def test_failing_source_shows_in_the_summary_metrics() -> None:
    handle = start(Stream(_Boom()).monitor("src"), display=False, name="t-src")
    with pytest.raises(OSError, match="disk gone"):
        await handle
    assert handle.metrics()["src"].status == "failed"


async def test_the_runs_frame_is_built_from_its_snapshots_only() -> None:
    """Monitors, buffers, concurrent stages and resilient sources reach the views as the
    run's frozen snapshots (``it.snapshots(kind)``), reconnects and failures included."""
    from streamnb import RetryPolicy
    from streamnb.metrics import (
        BufferSnapshot,
        ConcurrencySnapshot,
        MetricsSnapshot,
        ResilientSnapshot,
    )

    opened: list[Any] = []

    def flaky(token: Any) -> Iterator[int]:
        opened.append(token)
        start_at = 0 if token is None else token + 1
        for i in range(start_at, 40):
            if i == 10 and len(opened) == 1:
                raise ConnectionError("dropped at 10")
            yield i

    async def echo(x: int) -> int:
        await asyncio.sleep(0)
        return x

    s = (
        Stream.resilient(
            flaky, checkpoint=lambda x: x, retry=RetryPolicy(initial=0.0, jitter=False), name="src"
        )
        .buffer(4, name="b")
        .map(echo, concurrency=2, name="echo")
        .monitor("m")
    )
    handle = start(s, display=False, name="t-snapshots")
    summary = await handle
    assert summary.items == 40 and len(opened) == 2
    f = handle._frame()
    assert list(f.stages) == ["m"] and isinstance(f.stages["m"], MetricsSnapshot)
    assert f.stages["m"].items == 40 and summary.metrics["m"].items == 40
    assert isinstance(f.buffers["b"], BufferSnapshot) and f.buffers["b"].capacity == 4
    assert isinstance(f.concurrent["echo"], ConcurrencySnapshot)
    assert f.concurrent["echo"].completed == 40 and f.concurrent["echo"].concurrency == 2
    src = f.resilient["src"]
    assert isinstance(src, ResilientSnapshot)
    assert (src.delivered, src.failures, src.reconnects) == (40, 1, 1)
    assert "dropped at 10" in (src.last_error or "")
    assert f.calls == {}
    assert set(handle.snapshots()) == {"resilient:src", "buffer:b", "concurrency:echo", "monitor:m"}


async def test_run_chart_gets_each_new_window_row_once_at_the_refresh_rate() -> None:
    src = Source(400, delay=0.002)
    s = (
        Stream(src)
        .map(lambda i: {"i": i, "v": i % 5, "k": "ab"[i % 2]})
        .window(last=1000, name="w")
    )
    handle = start(s, display=False, name="t-chart", refresh=4.0)
    chart = handle.chart(x="i", y="v", by="k", window="w")
    sent: list[dict[str, Any]] = []
    chart.widget.send = sent.append  # type: ignore[method-assign]
    await handle
    assert chart.rows == 400  # every row of the window, once
    xs = sorted(x for m in sent for x in m["x"])
    assert xs == [float(i) for i in range(400)]  # each point sent once
    assert len(sent) <= handle.elapsed * 4.0 + 3  # at the refresh rate, never per item
    assert handle._chart_task is None and not others()  # the feeder ended with the run


async def test_run_chart_of_a_busy_window_reads_only_what_is_new() -> None:
    s = Stream(range(200_000)).map(lambda i: {"i": i, "v": 1.0}).window(last=50)
    handle = start(s, display=False, name="t-chart-busy", refresh=4.0)
    chart = handle.chart(x="i", y="v")
    await handle
    refreshes = handle.elapsed * 4.0 + 2
    assert 50 <= chart.rows <= 50 * refreshes  # at most the window's rows per refresh
    assert chart.points == min(chart.rows, chart.max_points)


async def test_run_chart_of_a_keyed_stage_gets_each_closed_window_once() -> None:
    src = Source(400, delay=0.002)
    s = (
        Stream(src)
        .map(lambda i: {"k": "ab"[i % 2], "t": i * 0.01})
        .keyed_window(tumbling(0.1), by="k", time="t", name="per-tenth")
    )
    handle = start(s, display=False, name="t-chart-keyed", refresh=4.0)
    chart = handle.chart(x="window_end", y="count", by="k", window="per-tenth")
    sent: list[dict[str, Any]] = []
    chart.widget.send = sent.append  # type: ignore[method-assign]
    await handle
    rows = handle.to_pandas("per-tenth")
    assert len(rows) == handle.items == 80 and not rows["open"].any()  # 40 windows per key
    assert chart.rows == 80  # every closed window, once
    xs = sorted(x for m in sent for x in m["x"])
    # window_end is a time: the chart sends it to the ES module in milliseconds
    assert xs == sorted(end * 1000.0 for end in rows["window_end"])
    assert sum(y for m in sent for y in m["y"]) == 400  # each item counted in one point
    assert len(sent) <= handle.elapsed * 4.0 + 3  # at the refresh rate, never per window
    assert handle._chart_task is None and not others()


async def test_run_chart_names_a_missing_window_and_reads_a_finished_run() -> None:
    handle = start(
        Stream(range(5)).map(lambda i: {"i": i, "n": i}).window(last=3, name="a"),
        display=False,
        name="t-chart-done",
    )
    await handle
    with pytest.raises(NoWindowError, match=r"window='b'.*its windows: 'a'"):
        handle.chart(x="i", y="n", window="b")
    chart = handle.chart(x="i", y="n", window="a")
    assert chart.rows == 3 and chart.to_pandas()["x"].tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(ArgumentTypeError, match=r"Run.chart\(window=3\)"):
        handle.chart(window=3)  # type: ignore[arg-type]


async def test_to_pandas_of_a_keyed_stage_shows_closed_then_open_windows_and_a_stop() -> None:
    src = Source(None, delay=0.0005)
    s = (
        Stream(src)
        .map(lambda i: {"k": "ab"[i % 2], "t": i * 0.01})
        .keyed_window(tumbling(0.5), by="k", time="t", name="per-half")
        .window(last=100, name="rows")
    )
    handle = start(s, display=False, name="t-keyed")
    await wait_for(lambda: handle.items >= 4)  # four windows closed and delivered
    live = handle.to_pandas("per-half")  # while running
    assert live["open"].iloc[-1] and not live["open"].iloc[0]
    handle.stop()  # mid-window: the windows of the last items are still open
    await handle.wait()
    assert handle.status == "cancelled"
    df = handle.to_pandas("per-half")
    snap = handle.snapshots("window")["per-half"]
    assert isinstance(snap, KeyedWindowSnapshot) and snap.open > 0
    assert list(df.columns) == ["k", "window_start", "window_end", "count", "open"]
    assert df["count"].sum() == snap.items  # every item pushed is in exactly one row
    opened, closed = df[df["open"]], df[~df["open"]]
    assert len(opened) == snap.open and len(closed) == snap.closed >= 4
    assert df["open"].tolist() == [False] * len(closed) + [True] * len(opened)  # open last
    assert closed["window_end"].is_monotonic_increasing
    assert closed["window_end"].max() < opened["window_end"].min()
    # the window of the same run reads as before, by name or as the run's window
    assert handle.to_pandas("rows")["count"].tolist() == handle.to_pandas()["count"].tolist()
    assert len(handle.to_pandas("rows")) == handle.items
    assert others() == []


async def test_to_pandas_by_name_names_the_run_and_what_it_has() -> None:
    s = (
        Stream(range(30))
        .map(lambda i: {"t": i * 0.1})
        .keyed_window(tumbling(1.0), time="t", name="kw")
        .window(last=5, name="rows")
    )
    handle = start(s, display=False, name="t-names")
    with pytest.raises(NoWindowError, match=r"run 't-names' has not opened its stream yet.*'kw'"):
        handle.to_pandas("kw")
    await handle
    df = handle.to_pandas("kw")  # a finished run: every window closed
    assert df["open"].tolist() == [False] * 3 and df["count"].tolist() == [10, 10, 10]
    assert len(handle.to_pandas("rows")) == 3
    keyed = handle._frame().keyed  # what the dashboard shows
    assert list(keyed) == ["kw"] and (keyed["kw"].closed, keyed["kw"].open) == (3, 0)
    with pytest.raises(
        NoWindowError,
        match=r"run 't-names' has no window or keyed stage named 'nope' "
        r"\(its windows: 'rows'; its keyed stages: 'kw'\)",
    ):
        handle.to_pandas("nope")
    with pytest.raises(ArgumentTypeError, match=r"Run.to_pandas\(name=3\)"):
        handle.to_pandas(3)  # type: ignore[arg-type]
    bare = start(Stream(range(3)), display=False, name="t-names-bare")
    await bare
    with pytest.raises(NoWindowError, match=r"'w' \(its windows: none; its keyed stages: none\)"):
        bare.to_pandas("w")
    clash = (
        Stream([{"t": 0.5}])
        .keyed_window(tumbling(1.0), time="t", name="x")
        .window(last=5, name="x")
    )
    both = start(clash, display=False, name="t-names-clash")
    await both
    with pytest.raises(InvalidArgumentError, match="a window and a keyed stage are both named 'x'"):
        both.to_pandas("x")


async def test_dead_letters_of_the_run_hold_what_its_stages_skipped() -> None:
    def check(i: int) -> int:
        if i % 4 == 3:
            raise ValueError(f"bad {i}")
        return i

    s = Stream(range(12)).map(check, on_error="skip", name="checked")
    handle = start(s, display=False, name="t-dead")
    assert handle.dead_letters == {}  # not opened yet
    summary = await handle
    assert summary.items == 9
    letters = handle.dead_letters
    assert list(letters) == ["checked"]
    assert letters["checked"].count == 3
    assert [e.index for e in letters["checked"].entries] == [3, 7, 11]
    assert [str(e.error) for e in letters["checked"].entries] == ["bad 3", "bad 7", "bad 11"]
