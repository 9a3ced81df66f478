"""The operator protocol (streamnb.operators.base): a new operator written in a few lines runs
fused with its neighbours and unfused on its own, and a raising user function in it gets the
item index of its own input - counted by the fuser, whatever precedes it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from streamnb import ArgumentTypeError, Stream
from streamnb._fuse import one_to_one
from streamnb.operators import Fragment, Link, Operator


class DistinctBy(Operator):
    """Drop items whose ``key`` was seen already (a user function: it may raise)."""

    def __init__(self, key: Callable[[Any], Any]) -> None:
        self.label = "distinct_by"
        self.key = key

    def fragment(self, link: Link) -> Fragment:
        return Fragment(
            body=("$k = $key(x)", "if $k in $seen:", "    continue", "$seen.add($k)"),
            params={"key": self.key},
            locals={"seen": "set()", "k": None},
        )


class Pairwise(Operator):
    """``(previous, current)`` pairs: the first item only primes it."""

    label = "pairwise"

    def fragment(self, link: Link) -> Fragment:
        return Fragment(
            body=(
                "if $prev is $nothing:",
                "    $prev = x",
                "    continue",
                "x, $prev = ($prev, x), x",
            ),
            params={"nothing": _NOTHING},
            locals={"prev": "$nothing"},
            calls_user=False,
        )


_NOTHING = object()


def _notes(exc: BaseException) -> list[str]:
    return [n for n in getattr(exc, "__notes__", []) if n.startswith("streamnb:")]


def _fused(s: Stream[Any], op: Operator) -> Stream[Any]:
    return s.map(lambda x: x).then(op).map(lambda x: x)


def _unfused(s: Stream[Any], op: Operator) -> Stream[Any]:
    return s.buffer(4).then(op).buffer(4)  # the operator alone in a loop of its own


@pytest.mark.parametrize("place", [_fused, _unfused], ids=["fused", "unfused"])
async def test_new_operators_run_fused_and_unfused(
    place: Callable[[Stream[Any], Operator], Stream[Any]],
) -> None:
    items = [3, 1, 3, 2, 1, 5, 2]
    assert await place(Stream(items), DistinctBy(lambda x: x)).collect() == [3, 1, 2, 5]
    assert await place(Stream(items), Pairwise()).collect() == list(itertools.pairwise(items))
    # a definition shares no state between runs: the second run sees everything again
    s = place(Stream(items), DistinctBy(lambda x: x % 3))
    assert await s.collect() == await s.collect() == [3, 1, 2]


@pytest.mark.parametrize("place", [_fused, _unfused], ids=["fused", "unfused"])
async def test_a_raising_user_function_is_noted_with_its_own_input_index(
    place: Callable[[Stream[Any], Operator], Stream[Any]],
) -> None:
    def key(x: int) -> int:
        if x == 7:
            raise LookupError("no key for 7")
        return x

    # a filter before it drops items: the index is the position at distinct_by's input
    s = Stream(range(20)).filter(lambda x: x % 2 == 1)
    with pytest.raises(LookupError, match="no key") as info:
        await place(s, DistinctBy(key)).collect()
    notes = _notes(info.value)
    assert len(notes) == 1, notes
    assert "distinct_by" in notes[0] and "item #3" in notes[0], notes  # 1, 3, 5, 7


async def test_an_operator_after_a_new_dropping_operator_gets_its_own_index() -> None:
    # the fuser sees the `continue` in DistinctBy's body: the map after it needs a counter
    def boom(x: int) -> int:
        if x == 5:
            raise ValueError("five")
        return x

    with pytest.raises(ValueError) as info:
        await Stream([1, 1, 1, 2, 5]).then(DistinctBy(lambda x: x)).map(boom).collect()
    assert "item #2" in _notes(info.value)[0]  # map saw 1, 2, 5


def test_one_to_one_is_derived_from_the_body_not_declared() -> None:
    assert one_to_one(["x = $f(x)"])
    assert not one_to_one(["if not $p(x):", "    continue"])
    assert not one_to_one(["if not $p(x):", "    break"])
    assert one_to_one(["x = 'continue'"])  # a string is not a statement


async def test_an_undeclared_name_is_a_clear_error() -> None:
    class Sloppy(Operator):
        label = "sloppy"

        def fragment(self, link: Link) -> Fragment:
            return Fragment(body=("x = $undeclared(x)",))

    with pytest.raises(ArgumentTypeError, match=r"sloppy.*\$undeclared"):
        await Stream([1]).then(Sloppy()).collect()


def test_then_refuses_what_is_not_an_operator() -> None:
    with pytest.raises(ArgumentTypeError, match="then"):
        Stream([1]).then(lambda x: x)  # type: ignore[arg-type]


async def test_names_of_two_instances_of_one_operator_do_not_collide() -> None:
    s = Stream([1, 1, 2, 3, 3, 4]).then(DistinctBy(lambda x: x)).then(Pairwise()).then(Pairwise())
    assert await s.collect() == [((1, 2), (2, 3)), ((2, 3), (3, 4))]
