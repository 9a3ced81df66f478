"""Pure formatting and state: no Jupyter, no widgets, no clock."""

from __future__ import annotations

import dataclasses
import datetime
import math
import time

import pytest

from streamnb.errors import StreamnbError
from streamnb.notebook._format import (
    InvalidTransitionError,
    Throttle,
    ThroughputHistory,
    buffer_gauges,
    call_lines,
    check_transition,
    format_bytes,
    format_count,
    format_duration,
    format_epoch_time,
    format_latency,
    format_rate,
    format_watermark,
    keyed_lines,
    keyed_rows,
    keyed_table_html,
    progress_for,
    progress_view,
    recovery_html,
    resilient_lines,
    stage_rows,
    stage_table_html,
    window_table_html,
)

from .helpers import buffer_snap, call_snap, frame, keyed_snap, resilient_snap, snap


@pytest.mark.parametrize(("n", "text"), [(0, "0"), (999, "999"), (1234567, "1,234,567")])
def test_format_count(n: int, text: str) -> None:
    assert format_count(n) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (0.0, "0/s"),
        (0.5, "0.5/s"),
        (12.34, "12.3/s"),
        (250.0, "250/s"),
        (999.9, "1k/s"),
        (12345.6, "12.3k/s"),
        (5.9e6, "5.9M/s"),
        (2.5e9, "2.5G/s"),
        (None, "?/s"),
        (math.nan, "?/s"),
    ],
)
def test_format_rate(rate: float | None, text: str) -> None:
    assert format_rate(rate) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0:00"), (2.4, "0:02"), (65, "1:05"), (3725, "1:02:05"), (None, "?"), (math.inf, "?")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_latency_and_bytes() -> None:
    assert format_latency(None) == "-"
    assert format_latency(0.00025) == "250 µs"
    assert format_latency(0.0123) == "12.3 ms"
    assert format_latency(2.5) == "2.5 s"
    assert format_bytes(1500) == "1.5kB"


def test_progress_with_total_shows_fraction_and_eta() -> None:
    v = progress_view(status="running", items=500, elapsed=2.0, total=1000, name="etl")
    assert v.fraction == 0.5
    assert v.bar_style == "info"
    assert v.label == "etl"
    assert v.text == "500/1,000 items · 250/s · 0:02 elapsed · ETA 0:02"


def test_progress_without_total_has_no_fraction_until_done() -> None:
    running = progress_view(status="running", items=10, elapsed=1.0)
    assert running.fraction is None
    assert "ETA" not in running.text
    done = progress_view(status="done", items=10, elapsed=1.0)
    assert done.fraction == 1.0
    assert done.bar_style == "success"
    assert done.text == "10 items · 10/s · 0:01 elapsed"


def test_progress_failed_is_red_with_the_error() -> None:
    v = progress_view(status="failed", items=3, elapsed=1.0, error="ValueError: bad row 3")
    assert v.bar_style == "danger"
    assert v.error == "ValueError: bad row 3"
    assert v.text.endswith("0:01 elapsed — ValueError: bad row 3")


def test_progress_paused_and_overshoot() -> None:
    v = progress_view(status="paused", items=1500, elapsed=1.0, total=1000)
    assert v.fraction == 1.0
    assert v.bar_style == "warning"
    assert v.text.endswith("ETA 0:00")
    assert progress_view(status="running", items=0, elapsed=0.0, total=0).fraction == 1.0
    stalled = progress_view(status="running", items=0, elapsed=0.0, total=10)
    assert "ETA ?" in stalled.text


def test_progress_for_uses_a_stage_total_when_the_run_has_none() -> None:
    stages = {
        "raw": snap("raw", items=10),
        "rows": snap("rows", items=40, total=100, rate=20.0),
    }
    v = progress_for(frame(items=3, elapsed=2.0, stages=stages))
    assert v.fraction == 0.4
    assert "40/100 items" in v.text and "20/s" in v.text
    own = progress_for(frame(items=3, elapsed=1.0, total=6, stages=stages))
    assert own.fraction == 0.5


def test_transitions() -> None:
    assert check_transition("pending", "running") == "running"
    assert check_transition("running", "paused") == "paused"
    assert check_transition("paused", "running") == "running"
    assert check_transition("paused", "cancelled") == "cancelled"
    for finished in ("done", "failed", "cancelled"):
        with pytest.raises(InvalidTransitionError, match="it is finished"):
            check_transition(finished, "running")  # type: ignore[arg-type]
    with pytest.raises(StreamnbError, match="'pending' to 'paused'"):
        check_transition("pending", "paused")


def test_stage_rows_and_table() -> None:
    stages = {
        "parse": snap("parse", items=1200, window_rate=300.0, rate=250.0, errors=2, latency=0.012),
        "<bad>": snap("<bad>", status="failed", items=5, rate=5.0, error="boom"),
    }
    rows = stage_rows(stages)
    assert [r.name for r in rows] == ["parse", "<bad>"]
    assert rows[0].items == "1,200" and rows[0].rate == "300/s"  # running: recent rate
    assert rows[0].latency == "12 ms" and rows[0].errors == "2"
    assert rows[1].rate == "5/s" and rows[1].failed  # finished: mean rate
    html = stage_table_html(rows)
    assert html.count("<tr>") == 3
    assert "&lt;bad&gt;" in html and "<bad>" not in html
    assert "#c62828" in html
    assert stage_table_html([]) == ""


def test_buffer_gauges_one_per_buffer_snapshot_in_order() -> None:
    buffers = {
        "buf": buffer_snap("buf", depth=90, capacity=100, high_water=100, dropped=7),
        "idle": buffer_snap("idle", depth=0, capacity=10, high_water=3),
    }
    gauges = buffer_gauges(buffers)
    assert [g.name for g in gauges] == ["buf", "idle"]
    assert gauges[0].fraction == 0.9 and gauges[0].bar_style == "warning"
    assert gauges[0].text == "90/100 · high-water 100 · dropped 7"
    assert gauges[1].fraction == 0.0 and gauges[1].bar_style == "info"
    full = buffer_gauges({"f": buffer_snap("f", depth=4, capacity=4, high_water=4)})
    assert full[0].bar_style == "danger"
    assert buffer_gauges({}) == []


def test_resilient_and_call_lines_compact_and_escaped() -> None:
    feed = resilient_snap(
        "feed", delivered=3000, failures=2, reconnects=2, last_error="RpcError: <UNAVAILABLE>"
    )
    calm = resilient_snap("calm", delivered=5, failures=0, reconnects=0)
    assert resilient_lines([feed, calm]) == [
        "feed: 3,000 delivered · 2 reconnects after 2 failures (last: RpcError: <UNAVAILABLE>)",
        "calm: 5 delivered · 0 reconnects after 0 failures",
    ]
    ok = call_snap(received=2500, bytes_received=250_000, elapsed=2.0, code="OK", reconnects=2)
    bad = call_snap(method="/x.Y/Z", shape="bidi", errors=3, decode_errors=1, code="UNAVAILABLE")
    lines = call_lines([ok, bad])
    assert lines[0] == (
        "/streamnb.demo.v1.Json/Subscribe (server_stream): 2,500 received (1.25k/s, 250kB), "
        "1 sent, 2 reconnects · OK"
    )
    assert lines[1] == (
        "/x.Y/Z (bidi): 0 received (0/s, 0B), 1 sent, 3 errors (1 decode) · UNAVAILABLE"
    )
    html = recovery_html([feed, calm], [ok, bad])
    assert "&lt;UNAVAILABLE&gt;" in html and "<UNAVAILABLE>" not in html
    assert html.count('class="streamnb-resilient"') == 2
    assert html.count('class="streamnb-call"') == 2
    assert html.count("color:#ef6c00;") == 1  # the source that failed
    assert html.count("color:#c62828;") == 1  # the call that ended badly
    assert recovery_html([], []) == ""


def test_throughput_history_rates_and_bound() -> None:
    h = ThroughputHistory(maxlen=3)
    h.add(0.0, {"a": 0})
    assert len(h) == 0 and h.version == 0 and h.depth() == 0
    h.add(1.0, {"a": 500, "b": 10})
    h.add(1.0, {"a": 900})  # same instant: merged into the next point, no division by zero
    h.add(3.0, {"a": 1500, "b": 30})
    assert h.series() == {"a": ([1.0, 3.0], [500.0, 500.0]), "b": ([3.0], [10.0])}
    assert h.depth() == 2
    for t in range(4, 10):
        h.add(float(t), {"a": 1500 + t})
    assert len(h.series()["a"][0]) == 3


def test_throttle_interval_and_duty() -> None:
    th = Throttle(min_interval=1.0, duty=0.02)
    assert th.ready(0.0)
    th.done(0.0, cost=0.005)  # cheap: the interval rules
    assert not th.ready(0.99) and th.ready(1.0)
    th.done(1.0, cost=0.1)  # costly: wait cost/duty = 5 s
    assert not th.ready(5.9) and th.ready(6.0)


def test_window_table_html() -> None:
    rows = [(1_700_000_000.0, {"id": 1, "msg": "<hi>" + "x" * 80}), (1_700_000_001.0, 5)]
    html = window_table_html(rows, max_chars=10)
    assert "&lt;hi&gt;" in html and "<hi>" not in html
    assert "…" in html
    assert html.count("<tr>") == 3
    assert ">arrived<" in html and ">value<" in html
    assert window_table_html([]) == ""


def test_concurrent_stage_rows_show_in_flight_and_the_cluster_link() -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from streamnb import Stream
    from streamnb.metrics import ConcurrencySnapshot
    from streamnb.notebook._format import concurrent_html, concurrent_lines

    class _Exec(ThreadPoolExecutor):
        dashboard_link = "http://127.0.0.1:8787/status"  # what a Dask executor offers

    def slow(x: int) -> int:
        time.sleep(0.001)
        return x

    async def main() -> str:
        with _Exec(max_workers=3) as ex:
            s = Stream(range(20)).map(slow, concurrency=3, executor=ex, name="slow")
            async with s.open() as it:
                async for _ in it:
                    snaps = it.snapshots("concurrency")
        rows = [r for r in snaps.values() if isinstance(r, ConcurrencySnapshot)]
        assert [r.name for r in rows] == ["slow"] and rows[0].concurrency == 3
        assert 1 <= rows[0].max_in_flight <= 3
        assert rows[0].dashboard_link == "http://127.0.0.1:8787/status"
        assert concurrent_lines(rows)[0].startswith("slow: ")
        assert " in flight (max " in concurrent_lines(rows)[0]
        return concurrent_html(rows)

    text = asyncio.run(main())
    assert "<code>slow</code>" in text and "in flight" in text
    assert 'href="http://127.0.0.1:8787/status"' in text


def test_throughput_history_merges_a_refresh_too_close_to_the_last() -> None:
    from streamnb.notebook._format import ThroughputHistory

    h = ThroughputHistory(maxlen=10)
    h.add(0.0, {"s": 0})
    h.add(1.0, {"s": 100})
    h.add(1.001, {"s": 150})  # a final refresh right after a periodic one: no 50k/s spike
    assert h.series()["s"] == ([1.0], [100.0])
    h.add(2.0, {"s": 250})  # measured from the last kept point
    assert h.series()["s"] == ([1.0, 2.0], [100.0, 150.0])
    assert h.span() == 1.0


def test_window_table_shows_an_item_whose_repr_raises_by_its_type() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    html = window_table_html([(1_700_000_000.0, {"obj": Hostile()})], max_chars=200)
    assert "&lt;" in html and "Hostile object at 0x" in html


def test_format_value_shows_numbers_for_reading() -> None:
    from streamnb.notebook._format import format_value

    assert format_value(0.1 + 0.2) == "0.3"  # no 16-digit float
    assert format_value(1 / 3) == "0.333333"
    assert format_value(123.456789) == "123.457"
    assert format_value(12345.678901) == "12,345.7"
    assert format_value(99999.99999) == "100,000"
    assert format_value(-1234.5678) == "-1234.57"
    assert format_value(0.000123456789) == "0.000123457"
    assert format_value(2 / 3 * 1e-5) == "6.66667e-06"
    assert format_value(1e20) == "1e+20"
    assert format_value(-0.0) == "0"
    assert format_value(float("nan")) == "NaN" and format_value(float("-inf")) == "-inf"
    assert format_value(1234) == "1234" and format_value(-42) == "-42"  # ids, years: plain
    assert format_value(1_234_567) == "1,234,567"
    assert format_value(True) is None and format_value("1.5") is None and format_value(None) is None


def test_window_table_formats_numbers() -> None:
    rows = [(1_700_000_000.0, {"latency_ms": 12.345678901234567, "n": 1_234_567, "id": 7})]
    html = window_table_html(rows)
    assert ">12.3457<" in html and "12.345678901234567" not in html
    assert ">1,234,567<" in html and ">7<" in html


def test_throughput_after_a_busy_loop_does_not_spike_above_the_true_rate() -> None:
    # a 1,000/s feed read every 0.25 s; the loop is busy from 0.5 s to 1.0 s (a cell starting,
    # a widget being built), so the items that arrived meanwhile are counted in one burst at
    # 1.25 s - 730 items in 0.25 s. The rate must stay the feed's, not 2,920/s.
    h = ThroughputHistory(maxlen=100)
    for t, n in [(0.0, 0), (0.25, 250), (0.5, 500), (1.0, 520), (1.25, 1250), (1.5, 1500)]:
        h.add(t, {"feed": n})
    times, rates = h.series()["feed"]
    assert times == [0.25, 0.5, 1.0, 1.25, 1.5]
    assert max(rates) <= 1000.0 + 1e-9, rates
    assert rates[-2:] == [1000.0, 1000.0]  # measured over the last second: stall and burst
    assert rates[2] == 520.0  # the stall itself still shows (over the one second it covers)


def test_throughput_history_keeps_few_samples_per_stage() -> None:
    h = ThroughputHistory(maxlen=5, smooth=1.0)
    for i in range(1000):
        h.add(i * 0.1, {"s": i * 10})
    assert h.series()["s"][1][-1] == pytest.approx(100.0)
    assert len(h._samples["s"]) <= 12  # the samples of one smoothing window, not the run
    assert len(h) == 5


def test_a_burst_after_a_stalled_first_refresh_never_spikes() -> None:
    # a real kernel running the tour: the run starts while the loop is busiest, so the counts
    # of the first refreshes lag, then the items that arrived meanwhile come in one burst
    feeds = [
        [(0.0, 230), (0.67, 488), (0.92, 1154), (1.17, 1414), (1.42, 1660), (1.67, 1906)],
        [(0.0, 213), (0.25, 477), (0.69, 477), (0.95, 1183), (1.2, 1423), (1.45, 1665)],
        [(0.0, 224), (0.25, 490), (0.62, 490), (0.88, 1108), (1.13, 1349), (1.38, 1599)],
    ]
    for feed in feeds:
        h = ThroughputHistory(maxlen=100)
        t_end, n_end = feed[-1]
        for t, n in feed + [(t_end + 0.25 * i, n_end + 250 * i) for i in range(1, 8)]:
            h.add(t, {"feed": n})
        rates = h.series()["feed"][1]
        # 1,000/s and a real run's jitter; before: 2,664/s, 2,800/s and 2,472/s, then ~1,400/s
        # once the stall left the smoothing window
        assert max(rates) <= 1100.0, (feed, rates)  # the first 0.25 s jitters by 7 %
        assert rates[-1] == pytest.approx(1000.0)


def test_a_real_rate_change_still_shows() -> None:
    h = ThroughputHistory(maxlen=100)
    for i in range(9):
        h.add(0.25 * i, {"s": 250 * i})  # 1,000/s for 2 s
    n = 2000
    for i in range(1, 9):
        n += 1000
        h.add(2.0 + 0.25 * i, {"s": n})  # then 4,000/s
    rates = h.series()["s"][1]
    assert rates[7] == pytest.approx(1000.0)
    assert rates[-1] == pytest.approx(4000.0)  # within ~1.25 s of smoothing


def test_format_watermark_as_a_number_or_a_time_of_day() -> None:
    import datetime as dt

    assert format_watermark(None) == "-"
    assert format_watermark(12.5) == "12.5"
    assert format_watermark(0.30000000000000004) == "0.3"
    assert format_watermark(-1.0) == "-1"
    t = 1_700_000_000.25
    assert format_watermark(t) == dt.datetime.fromtimestamp(t).strftime("%H:%M:%S.250")


def test_keyed_rows_lines_and_table_highlight_late_and_evicted() -> None:
    calm = keyed_snap("calm", items=5000, closed=42, open=3, keys=3, watermark=41.9)
    late = keyed_snap(
        "<late>",
        shape="session(gap=2)",
        items=12_345,
        late=7,
        evicted=2,
        closed=10,
        open=1,
        keys=1,
        max_keys=1,
        watermark=None,
    )
    rows = keyed_rows([calm, late])
    assert [r.name for r in rows] == ["calm", "<late>"]  # pipeline order
    assert (rows[0].items, rows[0].closed, rows[0].open, rows[0].keys) == (
        "5,000",
        "42",
        "3",
        "3/10,000",
    )
    assert (rows[0].late, rows[0].watermark, rows[0].has_late, rows[0].has_evicted) == (
        "0",
        "41.9",
        False,
        False,
    )
    assert (rows[1].late, rows[1].evicted, rows[1].has_late, rows[1].has_evicted) == (
        "7",
        "2",
        True,
        True,
    )
    assert keyed_lines([calm]) == [
        "calm tumbling(1): 5,000 items, 42 closed, 3 open over 3/10,000 keys, 0 late, "
        "0 evicted, watermark 41.9"
    ]
    html = keyed_table_html(rows)
    assert html.count('class="streamnb-keyed"') == 1 and html.count("<tr>") == 3
    assert "&lt;late&gt;" in html and "<late>" not in html
    assert html.count("color:#c62828;font-weight:bold;") == 1  # only the stage with late items
    assert 'color:#c62828;font-weight:bold;">7<' in html
    assert html.count("color:#ef6c00;") == 1 and 'color:#ef6c00;">2<' in html
    assert ">41.9<" in html and ">-<" in html  # no watermark before the first item
    assert keyed_table_html([]) == ""


def test_time_columns_of_the_window_tail_read_as_times_of_day() -> None:
    t0 = 1_796_186_721.0
    rows = [(t0 + 1, {"kind": "api", "window_start": t0, "window_end": t0 + 0.25, "count": t0})]
    table = window_table_html(rows)
    start = datetime.datetime.fromtimestamp(t0).strftime("%H:%M:%S.%f")[:-3]
    end = datetime.datetime.fromtimestamp(t0 + 0.25).strftime("%H:%M:%S.%f")[:-3]
    assert f">{start}<" in table and f">{end}<" in table and end.endswith(".250")
    assert ">1,796,186,721<" in table  # "count" is not a time column: a number stays a number
    assert format_epoch_time(12.5) is None and format_epoch_time(True) is None
    assert format_epoch_time(float("nan")) is None and format_epoch_time("x") is None
    # event times from your own origin stay numbers, in a time column too
    assert ">12.5<" in window_table_html([(t0, {"t": 12.5})])


def test_a_concurrent_stage_row_shows_how_its_executor_grouped_the_calls() -> None:
    from streamnb.metrics import ConcurrencySnapshot, TaskSnapshot
    from streamnb.notebook._format import concurrent_html, concurrent_lines, task_figures

    tasks = TaskSnapshot(
        sent=42,
        in_flight=4,
        done=40,
        calls=400,
        run_seconds=2.048,
        overhead_seconds=0.0061,
        batch_size=10,
    )
    assert (tasks.items_per_task, tasks.task_seconds) == (10.0, 0.0512)
    assert task_figures(tasks) == (
        "42 tasks (10.0 per task, 51.2 ms each, ~6.1 ms overhead), 4 on the cluster"
    )
    # before any task finished and before an overhead was measured: only the counts
    fresh = TaskSnapshot(1, 1, 0, 0, 0.0, None, None)
    assert (fresh.items_per_task, fresh.task_seconds) == (None, None)
    assert task_figures(fresh) == "1 task, 1 on the cluster"
    snap = ConcurrencySnapshot(
        name="map(<score>)",
        concurrency=40,
        in_flight=38,
        max_in_flight=40,
        started=438,
        completed=400,
        failed=0,
        executor="dask",
        dashboard_link="http://127.0.0.1:8787/status?a=1&b=2",
        taken_at=0.0,
        tasks=tasks,
    )
    (line,) = concurrent_lines([snap])
    assert line == (
        "map(<score>): 38/40 in flight (max 40), 400 done · dask: 42 tasks (10.0 per task, "
        "51.2 ms each, ~6.1 ms overhead), 4 on the cluster"
    )
    html = concurrent_html([snap])
    assert "<code>map(&lt;score&gt;)</code>" in html and "10.0 per task" in html
    assert 'href="http://127.0.0.1:8787/status?a=1&amp;b=2"' in html
    assert snap.as_dict()["tasks"]["items_per_task"] == 10.0
    # a stage whose executor does not group calls shows no task figures
    plain = dataclasses.replace(snap, executor="ThreadPoolExecutor", tasks=None)
    assert concurrent_lines([plain])[0].endswith("400 done · ThreadPoolExecutor")
    assert plain.as_dict()["tasks"] is None
