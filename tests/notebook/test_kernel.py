"""Real-kernel tests: runs on the kernel's own event loop, driven by nbclient."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .kernel import kernel

SLOW_SOURCE = """
closed = []
async def ticks(delay=0.002):
    try:
        i = 0
        while True:
            await asyncio.sleep(delay)
            yield {"i": i, "nested": {"sq": i * i}}
            i += 1
    finally:
        closed.append(True)
"""


async def test_background_run_keeps_updating_after_its_cell_ends(tmp_path: Path) -> None:
    async with kernel(tmp_path) as k:
        await k.cell(SLOW_SOURCE)
        cell = await k.cell(
            "h = Stream(ticks).monitor('ticks').window(last=20).start(name='bg', refresh=10)\n"
            "print('started', h.status)"
        )
        assert not k.errors(cell)
        assert "started pending" in k.text(cell)
        assert any(o.output_type == "display_data" for o in cell.outputs)  # the dashboard
        await k.wait_until("h.items > 0 and h._dashboard.bar.bar_style == 'info'")
        first = await k.value("[h.status, h.items, h._dashboard.bar.bar_style]")
        await asyncio.sleep(1.0)
        second = await k.value(
            "[h.status, h.items, h.metrics()['ticks'].items, h._dashboard.info.value]"
        )
        assert first[0] == "running" and first[2] == "info"
        assert second[0] == "running"
        assert second[1] > first[1] > 0  # the run went on between (and after) cells
        assert second[2] > first[1]  # the monitor publishes every few ms: it may lag a little
        assert "items" in second[3]  # the dashboard's text was refreshed by the timer

        # to_pandas() while running: a bounded snapshot with flattened columns
        frame = await k.value(
            "[len(h.to_pandas()), list(h.to_pandas().columns), int(h.to_pandas()['i'].iloc[-1])]"
        )
        assert frame[0] == 20
        assert frame[1] == ["arrived_at", "i", "nested.sq"]
        await asyncio.sleep(0.5)
        later = await k.value("[len(h.to_pandas()), int(h.to_pandas()['i'].iloc[-1])]")
        assert later[0] == 20 and later[1] > frame[2]

        # the stop button's handler, as a click from the frontend would run it
        await k.cell("h._dashboard.stop_button.click()")
        await k.wait_until("h.done")
        end = await k.value(
            "[h.status, closed, h._dashboard.stop_button.disabled, "
            "[t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith('streamnb')]]"
        )
        assert end == ["cancelled", [True], True, []]


async def test_rerunning_a_named_cell_stops_the_old_run(tmp_path: Path) -> None:
    async with kernel(tmp_path) as k:
        await k.cell(SLOW_SOURCE + "\nhandles = []")
        code = "h = Stream(ticks).monitor('t').start(name='same'); handles.append(h)"
        await k.cell(code)
        await k.wait_until("handles[0].items > 0")
        await k.cell(code)  # re-running the same cell
        await k.wait_until("handles[1].items > 0")
        state = await k.value(
            "[[x.status for x in handles], list(active_runs()), closed, handles[1].items > 0]"
        )
        assert state == [["cancelled", "running"], ["same"], [True], True]
        await k.cell("handles[1].stop()")


async def test_interrupting_a_foreground_run_leaves_no_pending_tasks(tmp_path: Path) -> None:
    async with kernel(tmp_path) as k:
        await k.cell(SLOW_SOURCE + "\nbaseline = set(asyncio.all_tasks())")
        loop_task = asyncio.ensure_future(
            k.cell("await Stream(ticks).buffer(8, name='buf').monitor('buf').run(name='fg')")
        )
        await asyncio.sleep(2.0)
        assert not loop_task.done(), "the foreground run ended before the interrupt"
        await k.client.km.interrupt_kernel()
        cell = await asyncio.wait_for(loop_task, 30)
        assert any("CancelledError" in e or "KeyboardInterrupt" in e for e in k.errors(cell))
        # ipykernel 7 wraps each request in tasks of its own: everything else must be gone
        left = await k.value(
            "[[repr(t) for t in asyncio.all_tasks() - baseline if not t.done() and "
            "'/ipykernel/' not in t.get_coro().cr_code.co_filename], closed, list(active_runs())]"
        )
        assert left == [[], [True], []]


async def test_run_sync_in_a_plain_cell_and_the_saved_final_state(tmp_path: Path) -> None:
    async with kernel(tmp_path) as k:
        cell = await k.cell(
            "s = Stream(range(50_000)).map(lambda x: x * 2).monitor('m', total=50_000)\n"
            "summary = s.run_sync(name='sync')\n"
            "print(summary.status, summary.items)"
        )
        assert not k.errors(cell), k.errors(cell)
        assert "done 50000" in k.text(cell)
        cell = await k.cell("await Stream(range(1000)).monitor('n', total=1000).run(name='fg')")
        assert not k.errors(cell)
        # nbclient stored the widget state sent during the cells: the final refresh is in it
        bars = [
            s["state"]
            for s in k.widget_states().values()
            if s["model_name"] == "FloatProgressModel" and s["state"].get("bar_style")
        ]
        assert bars and all(b["value"] == 1.0 and b["bar_style"] == "success" for b in bars)


async def test_failure_turns_the_dashboard_red(tmp_path: Path) -> None:
    async with kernel(tmp_path) as k:
        cell = await k.cell(
            "def bad(x):\n"
            "    if x == 7:\n"
            "        raise ValueError('row 7 is bad')\n"
            "    return x\n"
            "h = Stream(range(20)).map(bad).monitor('m').start(name='boom')"
        )
        assert not k.errors(cell)
        await k.wait_until("h.done")
        state = await k.value(
            "[h.status, h._dashboard.bar.bar_style, 'row 7 is bad' in h._dashboard.info.value]"
        )
        assert state == ["failed", "danger", True]
        cell = await k.cell("await h")
        assert k.errors(cell) == ["ValueError: row 7 is bad"]


async def test_the_handle_displays_as_its_dashboard_once_per_cell(tmp_path: Path) -> None:
    widget_view = "application/vnd.jupyter.widget-view+json"

    def views(cell: object) -> list[str]:
        outs = getattr(cell, "outputs", [])
        return [
            o["data"][widget_view]["model_id"] for o in outs if widget_view in o.get("data", {})
        ]

    async with kernel(tmp_path) as k:
        cell = await k.cell("h = Stream(range(10)).start(name='shown'); h")
        first = views(cell)
        assert len(first) == 1  # shown by start(); the cell's value does not repeat it
        later = await k.cell("await h\nh")
        assert views(later) == first  # a later cell shows the same dashboard again
        text = await k.cell("print(repr(h))")
        assert "<Run shown [####################] 100% done 10 items" in k.text(text)


async def test_a_keyed_stage_in_the_dashboard_and_its_open_windows_in_to_pandas(
    tmp_path: Path,
) -> None:
    async with kernel(tmp_path) as k:
        cell = await k.cell(
            "from streamnb.keyed import tumbling\n"
            "async def events():\n"
            "    i = 0\n"
            "    while True:\n"
            "        await asyncio.sleep(0.002)\n"
            "        late = i % 50 == 49  # 3 s of event time behind: its window has closed\n"
            "        yield {'k': 'ab'[i % 2], 't': i * 0.05 - (3.0 if late else 0.0)}\n"
            "        i += 1\n"
            "kw = Stream(events).keyed_window(tumbling(1.0), by='k', time='t', name='per-second')\n"
            "h = kw.start(name='keyed', refresh=10)\n"
            "snap = lambda: h.snapshots('window')['per-second']"
        )
        assert not k.errors(cell), k.errors(cell)
        await k.wait_until("h.items >= 4 and snap().late > 0")
        await k.wait_until("'color:#c62828;font-weight:bold;' in h._dashboard.body.value")
        live = await k.value(
            "[h._dashboard.body.value.count('class=\"streamnb-keyed\"'), "
            "'>per-second<' in h._dashboard.body.value, "
            "h.to_pandas('per-second')['open'].tolist()[-1]]"
        )
        assert live == [1, True, True]  # one keyed table; the open windows come last, marked
        await k.cell("h.stop()")
        await k.wait_until("h.done")
        end = await k.value(
            "[h.status, snap().open > 0, h.to_pandas('per-second')['open'].tolist()[-1], "
            "int(h.to_pandas('per-second')['count'].sum()) == snap().items - snap().late, "
            "f'>{snap().late}<' in h._dashboard.body.value]"
        )
        assert end == ["cancelled", True, True, True, True]
