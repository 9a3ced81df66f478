"""``streamnb._probe``: the first result of a plain function decides whether to await."""

from __future__ import annotations

import asyncio

import pytest

from streamnb._probe import Probe, Probed, probed_lines


async def _coro(x: int) -> int:
    return x + 1


def test_a_plain_result_rebinds_the_function_itself() -> None:
    def f(x: int) -> int:
        return x * 2

    with pytest.raises(Probed) as info:
        Probe(f, "map(f)")(3)
    assert info.value.fn is f and info.value.value == 6 and not info.value.awaited


async def test_an_awaitable_result_rebinds_the_awaiting_variant() -> None:
    probe = Probe(lambda x: _coro(x), "map(<lambda>)")
    with pytest.raises(Probed) as info:
        probe(1)
    assert info.value.awaited and await info.value.value == 2
    nxt = info.value.fn
    with pytest.raises(Probed) as again:
        nxt(5)
    assert again.value.awaited and await again.value.value == 6


def test_awaiting_variant_refuses_a_later_plain_result() -> None:
    calls = iter([asyncio.sleep(0), 5])
    probe = Probe(lambda x: next(calls), "map(mixed)")
    with pytest.raises(Probed) as info:
        probe(0)
    info.value.value.close()  # the coroutine is not needed here
    with pytest.raises(TypeError, match=r"map\(mixed\).*returned int"):
        info.value.fn(1)


def test_probed_lines_wrap_the_call_and_replace_it_in_the_handler() -> None:
    lines = probed_lines(("if not $p(x):", "    continue"), "$p(x)", "$p", "$pr")
    assert lines[:5] == (
        "try:",
        "    if not $p(x):",
        "        continue",
        "except _Probed as $pr:",
        "    $p = $pr.fn",
    )
    handler = "\n".join(lines[5:])
    assert "$p(x)" not in handler  # the handler uses the result it was handed
    assert "if not (await $pr.value):" in handler  # awaited when awaitable...
    assert "_up -= 1" in handler and "if not $pr.value:" in handler  # ...else taken as is
    with pytest.raises(ValueError, match="does not occur"):
        probed_lines(("x = g(x)",), "$f(x)", "$f", "$pr")
