"""LiveChart (Python side): deltas only, at a fixed rate, bounded, history on (re)render."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import Any

import pytest

from streamnb.errors import ArgumentTypeError, InvalidArgumentError
from streamnb.notebook.chart import MAX_RATE, LiveChart


class Sent:
    """Records what the widget sends to the frontend (the comm is not open outside a kernel)."""

    def __init__(self, chart: LiveChart) -> None:
        self.messages: list[dict[str, Any]] = []
        chart.widget.send = self.messages.append  # type: ignore[method-assign]


async def test_points_reach_the_frontend_as_deltas_at_the_refresh_rate() -> None:
    chart = LiveChart(x="t", y="v", by="k", rate=4.0)
    sent = Sent(chart)
    t0 = asyncio.get_running_loop().time()
    n = 0
    while asyncio.get_running_loop().time() - t0 < 1.2:
        for _ in range(50):
            chart.add({"t": float(n), "v": n % 7, "k": "ab"[n % 2]})
            n += 1
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)
    msgs = sent.messages
    assert 3 <= len(msgs) <= 1.5 * 4 + 2, len(msgs)  # ~4 per second, never one per row
    assert all(m["type"] == "points" for m in msgs)
    assert sum(len(m["x"]) for m in msgs) == n  # every point sent exactly once
    xs = [x for m in msgs for x in m["x"]]
    assert xs == sorted(xs) and len(set(xs)) == n  # no point resent
    assert msgs[0]["series"] == ["a", "b"]
    assert all("series" not in m for m in msgs[1:])  # names only when they change
    assert chart.messages == len(msgs)


async def test_message_count_does_not_depend_on_the_row_count() -> None:
    counts = []
    for rows_per_tick in (10, 1000):
        chart = LiveChart(x="t", y="v", rate=4.0, max_points=100)
        sent = Sent(chart)
        for tick in range(20):  # 1 s of run
            for i in range(rows_per_tick):
                chart.add({"t": tick * rows_per_tick + i, "v": 1.0})
            await asyncio.sleep(0.05)
        chart.flush()
        counts.append(len(sent.messages))
    assert abs(counts[0] - counts[1]) <= 2, counts
    assert max(counts) <= 1.0 * 4 + 3


def test_both_sides_stay_bounded_and_a_new_view_gets_the_history_once() -> None:
    chart = LiveChart(x="t", y="v", by="k", max_points=50, max_series=2, rate=4.0)
    sent = Sent(chart)
    for i in range(10_000):
        chart.add({"t": i, "v": i, "k": i % 3})  # key 2 is beyond max_series
    assert chart.points == 100
    assert chart.hidden_rows == 3333 and chart.widget.hidden_series == 1
    chart.flush()
    # no event loop here: the first row went at once, the rest waited for flush()
    first, rest = sent.messages
    assert len(first["x"]) == 1
    assert len(rest["x"]) == 2 * 50  # the queue is bounded too
    chart._on_msg(chart.widget, {"type": "hello"}, [])
    reset = sent.messages[-1]
    assert reset["type"] == "reset" and reset["series"] == [0, 1]
    assert len(reset["x"]) == 100 and max(reset["x"]) == 9_999.0


def test_time_axis_datetimes_missing_values_and_the_static_fallback() -> None:
    chart = LiveChart(y="count", by="kind")  # x defaults to window_end: a time axis
    assert chart.widget.time_axis
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    chart.add({"window_end": base, "count": 3, "kind": "a"})
    chart.add({"window_end": base.timestamp() + 1, "count": 5, "kind": "a"})
    chart.add({"window_end": base.timestamp() + 1, "count": math.nan, "kind": "b"})
    assert chart.skipped == 1
    df = chart.to_pandas()
    assert df["y"].tolist() == [3.0, 5.0]
    assert df["x"].iloc[0] == base
    fig = chart.plot()
    assert fig.axes[0].get_title() == "count by kind"
    with pytest.raises(ArgumentTypeError, match="'soon'"):
        chart.add({"window_end": "soon", "count": 1, "kind": "a"})


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"rate": 10.0}, InvalidArgumentError),
        ({"rate": math.nan}, InvalidArgumentError),
        ({"kind": "pie"}, InvalidArgumentError),
        ({"max_points": 1}, InvalidArgumentError),
        ({"x": 3}, ArgumentTypeError),
    ],
)
def test_bad_arguments_fail_up_front(kwargs: dict[str, Any], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        LiveChart(**kwargs)


def test_max_rate_is_at_most_four_hertz() -> None:
    assert MAX_RATE <= 4.0
