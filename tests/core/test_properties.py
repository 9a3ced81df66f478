"""Property tests: for random inputs and random operator chains, streamnb's output equals a
plain-Python reference, and fused and unfused executions of one chain agree."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streamnb import Stream

Op = tuple[str, int]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("map"), st.integers(-3, 3)),
        st.tuples(st.just("filter"), st.integers(2, 4)),
        st.tuples(st.just("take"), st.integers(0, 30)),
        st.tuples(st.just("skip"), st.integers(0, 10)),
        st.tuples(st.just("batch"), st.integers(1, 5)),
        st.tuples(st.just("sample"), st.integers(1, 4)),
        st.tuples(st.just("enumerate"), st.integers(0, 3)),
        st.tuples(st.just("scan"), st.just(0)),
        st.tuples(st.just("take_while"), st.integers(2, 7)),
        st.tuples(st.just("monitor"), st.just(0)),
    ),
    max_size=6,
)


def _key(x: Any) -> int:
    """A number for any item the chains produce (ints, lists, pairs)."""
    if isinstance(x, list):
        return sum(_key(y) for y in x)
    if isinstance(x, tuple):
        return _key(x[0]) + 2 * _key(x[1])
    return int(x)


def _ref(items: list[Any], chain: list[Op]) -> list[Any]:
    out = list(items)
    for name, k in chain:
        if name == "map":
            out = [(_key(x) + k) for x in out]
        elif name == "filter":
            out = [x for x in out if _key(x) % k]
        elif name == "take":
            out = out[:k]
        elif name == "skip":
            out = out[k:]
        elif name == "batch":
            out = [out[i : i + k] for i in range(0, len(out), k)]
        elif name == "sample":
            out = out[::k]
        elif name == "enumerate":
            out = list(enumerate(out, k))
        elif name == "scan":
            out = list(itertools.accumulate((_key(x) for x in out), initial=0))[1:]
        elif name == "take_while":
            out = list(itertools.takewhile(_not_multiple_of(k), out))
    return out


def _adder(k: int) -> Callable[[Any], int]:
    return lambda x: _key(x) + k


def _not_multiple_of(k: int) -> Callable[[Any], int]:
    return lambda x: _key(x) % k


async def _id(x: Any) -> Any:
    return x


def _build(
    s: Stream[Any], chain: list[Op], breaker: Callable[[Stream[Any]], Stream[Any]] | None
) -> Stream[Any]:
    for name, k in chain:
        if name == "map":
            s = s.map(_adder(k))
        elif name == "filter":
            s = s.filter(_not_multiple_of(k))
        elif name == "take":
            s = s.take(k)
        elif name == "skip":
            s = s.skip(k)
        elif name == "batch":
            s = s.batch(k)
        elif name == "sample":
            s = s.sample(every=k)
        elif name == "enumerate":
            s = s.enumerate(k)
        elif name == "scan":
            s = s.scan(lambda a, x: a + _key(x), 0)
        elif name == "take_while":
            s = s.take_while(_not_multiple_of(k))
        elif name == "monitor":
            s = s.monitor(f"m{len(repr(s))}")  # a pass-through that counts
        if breaker is not None:
            s = breaker(s)  # ends the fused run after every operator
    return s


BREAKERS: list[Callable[[Stream[Any]], Stream[Any]] | None] = [
    None,
    lambda s: s.buffer(2),
    lambda s: s.map(_id),  # an async map
    lambda s: s.map(_id, concurrency=3),
    lambda s: s.flat_map(lambda x: [x]),
]


@settings(max_examples=400)  # the generated code has many shapes: explore more of them
@given(items=st.lists(st.integers(-50, 50), max_size=60), chain=ops)
def test_chain_equals_reference(items: list[int], chain: list[Op]) -> None:
    expected = _ref(items, chain)
    assert asyncio.run(_build(Stream(items), chain, None).collect(limit=None)) == expected


@given(
    items=st.lists(st.integers(-50, 50), max_size=40),
    chain=ops,
    which=st.integers(1, len(BREAKERS) - 1),
    sync_source=st.booleans(),
)
def test_fused_and_unfused_agree(
    items: list[int], chain: list[Op], which: int, sync_source: bool
) -> None:
    async def agen() -> Any:
        for x in items:
            yield x

    async def both() -> tuple[list[Any], list[Any]]:
        src: Any = items if sync_source else agen
        fused = await _build(Stream(src), chain, None).collect(limit=None)
        unfused = await _build(Stream(src), chain, BREAKERS[which]).collect(limit=None)
        return fused, unfused

    fused, unfused = asyncio.run(both())
    assert fused == unfused == _ref(items, chain)


@given(items=st.lists(st.integers(), max_size=80), size=st.integers(1, 10), n=st.integers(0, 90))
def test_take_then_batch_then_count(items: list[int], size: int, n: int) -> None:
    async def run() -> tuple[int, list[list[int]]]:
        s = Stream(items).take(n).batch(size)
        return await s.count(), await s.collect()

    count, chunks = asyncio.run(run())
    head = items[:n]
    assert chunks == [head[i : i + size] for i in range(0, len(head), size)]
    assert count == len(chunks)
