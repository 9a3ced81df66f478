"""The live token view: throttled renders, the exact final text (no browser needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamnb import InvalidArgumentError
from streamnb.demo.http import HttpDemoServer
from streamnb.http import chat
from streamnb.notebook.tokens import TokenText, TokenView

from .kernel import kernel


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_renders_at_most_hz_times_a_second_and_the_final_text_exactly() -> None:
    clock = FakeClock()
    shown: list[str] = []
    view = TokenView(hz=4, render=shown.append, clock=clock)
    pieces = [f" t{i}" for i in range(1000)]
    for piece in pieces:  # 1000 tokens over 2.5 s
        view.write(piece)
        clock.now += 0.0025
    assert 9 <= view.renders <= 11  # 4 per second, plus the first token
    assert shown[0] == " t0"
    assert view.close() == "".join(pieces)
    assert shown[-1] == "".join(pieces) and view.renders == len(shown)
    assert view.close() == "".join(pieces) and len(shown) == view.renders  # idempotent


def test_update_takes_token_events_and_strings_and_ignores_the_rest() -> None:
    shown: list[str] = []
    view = TokenView(render=shown.append, title="answer")

    class Token:
        kind = "token"
        text = "b"

    class Finish:
        kind = "finish"
        text = "not text"

    for event in ["a", Token(), Finish(), " c"]:
        view.update(event)
    assert view.close() == "ab c"
    assert shown[-1] == "**answer**\n\nab c"


def test_token_text_is_exact_and_knows_when_it_is_stale() -> None:
    clock = FakeClock()
    text = TokenText(hz=2, clock=clock)
    assert text.add("x") and not text.add("y")
    text.rendered()
    assert not text.stale and text.text == "xy"
    clock.now = 0.6
    assert text.add("z") and text.stale and text.text == "xyz"
    with pytest.raises(InvalidArgumentError, match="hz"):
        TokenText(hz=float("nan"))
    with pytest.raises(InvalidArgumentError, match="hz"):
        TokenView(hz=0)


async def test_show_consumes_a_chat_stream() -> None:
    shown: list[str] = []
    async with HttpDemoServer() as srv:
        view = TokenView(hz=1000, render=shown.append)
        messages = [{"role": "user", "content": "render me in place"}]
        text = await view.show(chat(f"{srv.url}/v1", "streamnb-fake", messages))
    assert text == "You said: render me in place" == shown[-1]


def test_outside_a_notebook_close_prints_the_text(capsys: pytest.CaptureFixture[str]) -> None:
    view = TokenView()
    view.write("hello ")
    view.write("world")
    view.close()
    assert capsys.readouterr().out == "hello world\n"


async def test_in_a_kernel_one_output_is_updated_in_place(tmp_path: Path) -> None:
    async with kernel(tmp_path) as k:
        cell = await k.cell(
            "from streamnb.notebook.tokens import TokenView\n"
            "view = TokenView(hz=4, title='live')\n"
            "for i in range(60):\n"
            "    view.write(f' w{i}')\n"
            "    await asyncio.sleep(0.01)\n"
            "final = view.close()\n"
            "print('@@' + json.dumps([view.renders, final]))"
        )
        assert not k.errors(cell), k.errors(cell)
    renders, final = json.loads(k.text(cell).split("@@", 1)[1])
    assert final == "".join(f" w{i}" for i in range(60))
    assert 2 <= renders <= 6  # 0.6 s at 4 Hz, the first token and the final text
    shown = [o for o in cell.outputs if o.output_type == "display_data"]
    assert len(shown) == 1  # every render updated the same output
    assert shown[0].data["text/markdown"] == f"**live**\n\n{final}"
