"""The dashboard view with real ipywidgets (no kernel: widgets sync into comm's default comm)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import ipywidgets as widgets
import pytest

from streamnb.notebook import chart as chart_module
from streamnb.notebook.dashboard import Dashboard

from .helpers import buffer_snap, call_snap, frame, keyed_snap, resilient_snap, snap


def count_sends(dash: Dashboard) -> dict[str, int]:
    """Count the update messages widgets send (wrapping Widget._send, which sends one)."""
    counter = {"n": 0}
    original = widgets.Widget._send

    def spy(self: Any, msg: Any, buffers: Any = None) -> None:
        counter["n"] += 1
        original(self, msg, buffers)

    widgets.Widget._send = spy  # type: ignore[method-assign]
    dash._restore = lambda: setattr(widgets.Widget, "_send", original)  # type: ignore[attr-defined]
    return counter


@pytest.fixture
def dash() -> Any:
    calls: list[str] = []
    d = Dashboard("etl", on_stop=lambda: calls.append("stop"), on_pause=lambda: calls.append("p"))
    d.calls = calls  # type: ignore[attr-defined]
    yield d
    restore = getattr(d, "_restore", None)
    if restore is not None:
        restore()


def test_running_frame_fills_bar_text_and_stage_table(dash: Dashboard) -> None:
    stages = {"parse": snap("parse", items=250, window_rate=125.0)}
    dash.update(frame(items=250, elapsed=2.0, total=1000, stages=stages, taken_at=1.0))
    assert dash.bar.value == 0.25
    assert dash.bar.bar_style == "info"
    assert "250/1,000 items" in dash.info.value and "ETA 0:06" in dash.info.value
    assert ">running<" in dash.info.value
    assert dash.bar.description == "etl"
    assert ">parse<" in dash.body.value and ">125/s<" in dash.body.value
    assert not dash.stop_button.disabled


def test_done_turns_green_and_disables_buttons(dash: Dashboard) -> None:
    dash.close(frame("done", items=10, elapsed=1.0, taken_at=1.0))
    assert dash.bar.value == 1.0 and dash.bar.bar_style == "success"
    assert dash.stop_button.disabled and dash.pause_button.disabled
    dash.update(frame(items=99, taken_at=2.0))  # ignored once closed
    assert "10 items" in dash.info.value


def test_failure_is_red_with_the_message(dash: Dashboard) -> None:
    dash.close(frame("failed", items=3, error="ValueError: row 3 <bad>", taken_at=1.0))
    assert dash.bar.bar_style == "danger"
    assert "ValueError: row 3 &lt;bad&gt;" in dash.info.value
    assert "#c62828" in dash.info.value


def test_buttons_call_back_and_pause_label_follows_status(dash: Dashboard) -> None:
    dash.pause_button.click()
    dash.stop_button.click()
    assert dash.calls == ["p", "stop"]  # type: ignore[attr-defined]
    dash.update(frame("paused", taken_at=1.0))
    assert dash.pause_button.description == "Resume"
    dash.update(frame("running", taken_at=2.0))
    assert dash.pause_button.description == "Pause"


def test_buffer_gauges_show_depth_and_high_water(dash: Dashboard) -> None:
    buf = buffer_snap("buf", depth=5, capacity=10, high_water=8)
    dash.update(frame(buffers={"buf": buf}, taken_at=1.0))
    body = dash.body.value
    assert body.count('class="streamnb-buffers"') == 1
    assert "5/10 · high-water 8" in body
    assert "width:100px;background:#42a5f5" in body  # half of the 200 px gauge
    assert "left:158px;top:-2px;width:2px" in body  # the high-water tick at 8/10
    buf2 = buffer_snap("buf", depth=10, capacity=10, high_water=10)
    dash.update(frame(buffers={"buf": buf2}, taken_at=2.0))
    assert "width:200px;background:#ef5350" in dash.body.value  # full: red


def test_resilient_sources_and_calls_show_their_reconnects_and_counters(dash: Dashboard) -> None:
    feed = resilient_snap("feed", delivered=900, failures=2, reconnects=2, last_error="boom")
    call = call_snap(received=900, reconnects=2, errors=2)
    dash.update(frame(resilient={"feed": feed}, calls={"call": call}, taken_at=1.0))
    body = dash.body.value
    assert "feed: 900 delivered · 2 reconnects after 2 failures (last: boom)" in body
    assert "/streamnb.demo.v1.Json/Subscribe (server_stream): 900 received" in body
    assert "2 errors (0 decode), 2 reconnects · running" in body


def test_keyed_stages_show_their_windows_keys_late_items_and_watermark(dash: Dashboard) -> None:
    kw = keyed_snap("per-second", items=900, closed=12, open=3, keys=3, watermark=12.5)
    dash.update(frame(keyed={"per-second": kw}, taken_at=1.0))
    body = dash.body.value
    table = body[body.index('class="streamnb-keyed"') :]
    for cell in (">per-second<", ">tumbling(1)<", ">900<", ">12<", ">3/10,000<", ">12.5<"):
        assert cell in table
    assert "font-weight:bold" not in table  # no late item: nothing highlighted
    late = keyed_snap("per-second", items=950, closed=12, open=3, keys=3, late=4, watermark=13.0)
    dash.update(frame(keyed={"per-second": late}, taken_at=2.0))
    assert 'color:#c62828;font-weight:bold;">4<' in dash.body.value


def test_throughput_goes_to_the_live_chart_as_new_points_only(dash: Dashboard) -> None:
    sent: list[dict[str, Any]] = []
    dash.update(frame(stages={"s": snap("s", items=0)}, taken_at=0.0))
    assert dash.chart is None and len(dash.widget.children) == 3  # no rate point yet
    dash.update(frame(stages={"s": snap("s", items=250)}, taken_at=0.25))
    assert dash.chart is not None and dash.widget.children[-1] is dash.chart.widget
    dash.chart.widget.send = sent.append  # type: ignore[method-assign]
    assert dash.chart.rows == 1
    for i in range(2, 12):  # no running loop here: the chart sends when its rate allows
        dash.update(frame(stages={"s": snap("s", items=250 * i)}, taken_at=0.25 * i))
    assert dash.chart.rows == 11  # one point per refresh, never one per item
    dash.close(frame("done", stages={"s": snap("s", items=3000)}, taken_at=3.0))
    assert dash.chart.rows == 12
    pts = [(x, y) for m in sent for x, y in zip(m["x"], m["y"], strict=True)]
    xs = [x for x, _ in pts]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)  # no point sent twice
    assert 1 <= len(pts) <= 11 and all(m["type"] == "points" for m in sent)
    assert [y for _, y in pts][-1] == pytest.approx(1000.0)  # the final state is sent
    assert len(dash.widget.children) == 4


def test_the_chart_is_bounded_and_its_messages_do_not_follow_the_item_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the chart paces its messages by the clock: give it the frames' clock, so that the count
    # depends on the refreshes only (not on how fast this loop runs on a loaded machine)
    clock = {"now": 0.0}
    monkeypatch.setattr(chart_module, "time", SimpleNamespace(monotonic=lambda: clock["now"]))
    counts = []
    for per_refresh in (10, 100_000):
        d = Dashboard("etl", refresh=4.0)
        for i in range(1000):  # 250 s of refreshes at 4 Hz
            clock["now"] = 1000.0 * per_refresh + 0.25 * i
            d.update(frame(stages={"s": snap("s", items=per_refresh * i)}, taken_at=0.25 * i))
        assert d.chart is not None
        assert d.chart.points <= d.history.maxlen <= int(60 * 4.0) + 2  # 60 s kept
        counts.append(d.chart.messages)
    assert counts[0] == counts[1] and 500 <= counts[0] <= 1000, counts  # about one per refresh


def test_static_layouts_and_styles_are_shared_between_dashboards(dash: Dashboard) -> None:
    other = Dashboard("other")
    assert other.bar.layout is dash.bar.layout
    assert other.stop_button.style is dash.pause_button.style
    assert other.info.layout is dash.body.layout
    assert other.bar is not dash.bar


def test_window_tail_table(dash: Dashboard) -> None:
    tail = tuple((1_700_000_000.0 + i, {"id": i}) for i in range(8))
    dash.update(frame(window_tail=tail, taken_at=1.0))
    table = dash.body.value[dash.body.value.index('class="streamnb-window"') :]
    assert table.count("<tr>") == 1 + 5  # header + show_window rows
    assert ">7<" in table and ">2<" not in table


def test_a_refresh_sends_few_messages_and_none_when_nothing_changed(dash: Dashboard) -> None:
    stages = {"a": snap("a", items=1), "b": snap("b", items=1)}
    dash.update(frame(items=1, elapsed=1.0, stages=stages, taken_at=0.0))
    dash.update(frame(items=1, elapsed=1.0, stages=stages, taken_at=0.25))  # the chart appears
    assert dash.chart is not None
    sends = count_sends(dash)
    # same values, and too soon after the last refresh for a new rate point: nothing is sent
    dash.update(frame(items=1, elapsed=1.0, stages=stages, taken_at=0.26))
    assert sends["n"] == 0
    stages2 = {"a": snap("a", items=5000), "b": snap("b", items=4000)}
    dash.update(frame(items=5000, elapsed=1.0, total=10_000, stages=stages2, taken_at=0.5))
    # hold_sync groups each widget's changes: bar, info, body, + one chart message holding
    # both stages' new points
    assert 1 <= sends["n"] <= 4
