"""The text progress line (terminals, logs)."""

from __future__ import annotations

import io

from streamnb.notebook._text import TextProgress, text_line

from .helpers import call_snap, frame, keyed_snap, resilient_snap, snap


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_line_with_and_without_total() -> None:
    line = text_line(frame(items=500, elapsed=2.0, total=1000, name="etl"), bar_width=10)
    assert line == "etl [#####.....]  50% 500/1,000 items · 250/s · 0:02 elapsed · ETA 0:02"
    assert text_line(frame(items=7, elapsed=1.0, name="x")) == "x 7 items · 7/s · 0:01 elapsed"


def test_tty_redraws_in_place_and_ends_with_the_stage_summary() -> None:
    out = TTY()
    view = TextProgress(out)
    view.update(frame(items=1000, elapsed=1.0, name="long-name-run"))
    view.update(frame(items=5, elapsed=1.0, name="r"))
    stages = {"m": snap("m", status="done", items=10, rate=10.0, errors=1)}
    view.close(frame("done", items=10, elapsed=1.0, name="r", stages=stages))
    view.close(frame("done", items=99, name="r"))  # idempotent
    view.update(frame(items=99, name="r"))  # ignored after close
    text = out.getvalue()
    assert text.count("\r") == 3
    first, second = text.split("\r")[1:3]
    assert len(second) == len(first)  # padded over the longer previous line
    assert "r [####################] 100% done 10 items" in text
    assert text.endswith("\n  m: done, 10 items, 10/s, errors 1, dropped 0, latency -\n")


def test_log_mode_writes_a_line_per_interval() -> None:
    out = io.StringIO()
    view = TextProgress(out, log_interval=10.0)
    for t in range(0, 25):
        view.update(frame(items=t, elapsed=float(t), taken_at=float(t)))
    view.close(frame("failed", items=25, elapsed=25.0, taken_at=25.0, error="OSError: gone"))
    lines = out.getvalue().splitlines()
    assert [ln.split(" items")[0] for ln in lines] == ["run 0", "run 10", "run 20", "run failed 25"]
    assert "\r" not in out.getvalue()
    assert lines[-1].startswith("run failed 25 items")
    assert lines[-1].endswith("— OSError: gone")


def test_final_summary_has_a_line_per_resilient_source_and_call() -> None:
    out = io.StringIO()
    view = TextProgress(out)
    feed = resilient_snap("feed", delivered=3000, failures=2, reconnects=2, last_error="drop")
    call = call_snap(received=3000, elapsed=3.0, code="OK", reconnects=2)
    view.close(frame("done", items=3000, resilient={"feed": feed}, calls={"c": call}))
    lines = out.getvalue().splitlines()
    assert lines[-2] == (
        "  resilient feed: 3,000 delivered · 2 reconnects after 2 failures (last: drop)"
    )
    assert lines[-1].startswith("  call /streamnb.demo.v1.Json/Subscribe (server_stream): 3,000")
    assert lines[-1].endswith("2 reconnects · OK")


def test_final_summary_has_a_line_per_keyed_stage() -> None:
    out = io.StringIO()
    kw = keyed_snap("kw", items=100, closed=9, open=1, keys=1, late=2, watermark=9.9)
    TextProgress(out).close(frame("cancelled", items=9, keyed={"kw": kw}))
    assert out.getvalue().splitlines()[-1] == (
        "  keyed kw tumbling(1): 100 items, 9 closed, 1 open over 1/10,000 keys, 2 late, "
        "0 evicted, watermark 9.9"
    )
