"""Operator fusion (streamnb._fuse): generated code must behave exactly like separate stages -
same values, per-run state, exceptions unchanged with a note naming the stage and item index."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from streamnb import Stream
from streamnb._fuse import cached_shapes

from ._support import SyncTracked


def _notes(exc: BaseException) -> list[str]:
    return [n for n in getattr(exc, "__notes__", []) if n.startswith("streamnb:")]


def _boom_at(k: int) -> Callable[[int], int]:
    def boom(x: int) -> int:
        if x == k:
            raise ValueError(f"bad {x}")
        return x

    return boom


async def test_error_note_names_stage_and_index_at_source_position() -> None:
    with pytest.raises(ValueError, match="bad 6") as info:
        await Stream(range(10)).map(lambda x: x).map(_boom_at(6)).collect()
    notes = _notes(info.value)
    assert len(notes) == 1
    assert "map(" in notes[0] and "boom" in notes[0] and "item #6" in notes[0]


@pytest.mark.parametrize(
    "make",
    [
        lambda s: s.filter(lambda x: x % 2 == 0),
        lambda s: s.skip(2),
        lambda s: s.sample(every=2),
    ],
    ids=["after_filter", "after_skip", "after_sample"],
)
async def test_error_note_index_counts_items_at_the_failing_stage(make: object) -> None:
    # the index is the item's position at the failing stage's input (as in DeadLetterEntry),
    # also when an earlier fused operator dropped items
    pre = make(Stream(range(20)))  # type: ignore[operator]
    upstream = await pre.collect()
    position = upstream.index(6)
    with pytest.raises(ValueError) as info:
        await pre.map(_boom_at(6)).collect()
    notes = _notes(info.value)
    assert len(notes) == 1 and "boom" in notes[0]
    assert f"item #{position}" in notes[0], notes


async def test_filter_predicate_error_named() -> None:
    def picky(x: int) -> bool:
        if x == 3:
            raise KeyError(x)
        return True

    with pytest.raises(KeyError) as info:
        await Stream(range(5)).map(lambda x: x).filter(picky).collect()
    notes = _notes(info.value)
    assert len(notes) == 1 and "filter(" in notes[0] and "item #3" in notes[0]


async def test_note_added_once_across_several_fused_runs() -> None:
    s = Stream(range(10)).map(_boom_at(4)).buffer(2).map(lambda x: x).batch(3)
    with pytest.raises(ValueError) as info:
        await s.collect()
    assert len(_notes(info.value)) == 1


async def test_sync_source_error_is_annotated_as_source() -> None:
    class Flaky:
        def __iter__(self) -> Iterator[int]:
            yield 1
            yield 2
            raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone") as info:
        await Stream(Flaky()).map(lambda x: x).collect()
    notes = _notes(info.value)
    assert len(notes) == 1 and "source" in notes[0]


async def test_exception_type_and_traceback_unchanged() -> None:
    class Custom(Exception):
        pass

    def deep(x: int) -> int:
        raise Custom("deep")

    with pytest.raises(Custom) as info:
        await Stream([1]).map(deep).collect()
    assert info.tb is not None
    assert any(entry.name == "deep" for entry in info.traceback)


async def test_interleaved_runs_of_one_definition_share_no_state() -> None:
    s = (
        Stream(range(10))
        .enumerate(100)
        .skip(1)
        .scan(lambda a, p: a + p[1], 0)
        .sample(every=2)
        .monitor("m")
        .batch(2)
    )
    async with s.open() as a, s.open() as b:
        got_a, got_b = [], []
        for _ in range(2):
            got_a.append(await a.__anext__())
            got_b.append(await b.__anext__())
        got_a += [x async for x in a]
        got_b += [x async for x in b]
        assert a.metrics()["m"].items == b.metrics()["m"].items == 5
    assert got_a == got_b == [[1, 6], [15, 28], [45]]


async def test_same_shape_different_functions_do_not_collide() -> None:
    r1 = await Stream(range(5)).map(lambda x: x + 1).filter(lambda x: x % 2 == 0).collect()
    r2 = await Stream(range(5)).map(lambda x: x * 10).filter(lambda x: x > 15).collect()
    assert r1 == [2, 4]
    assert r2 == [20, 30, 40]


async def test_generated_code_is_cached_per_shape() -> None:
    def chain(k: int) -> Stream[list[int]]:
        return Stream(range(5)).map(lambda x: x + k).filter(lambda x: x > k).batch(2)

    await chain(1).collect()
    size = cached_shapes()
    for k in range(20):
        assert await chain(k).collect() == [[k + 1, k + 2], [k + 3, k + 4]]
    assert cached_shapes() == size


async def test_async_functions_in_fused_chain() -> None:
    async def inc(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    async def even(x: int) -> bool:
        return x % 2 == 0

    seen: list[int] = []

    async def record(x: int) -> None:
        seen.append(x)

    got = await Stream(range(6)).map(inc).filter(even).tap(record).collect()
    assert got == seen == [2, 4, 6]


async def test_take_while_stops_fused_run_and_closes_sync_source() -> None:
    src = SyncTracked(range(100))
    got = await Stream(src).map(lambda x: x * 2).take_while(lambda x: x < 10).collect()
    assert got == [0, 2, 4, 6, 8]
    assert src.pulled == 6 and src.finalized == 1


async def test_skip_policy_in_fused_chain_counts_index_per_stage() -> None:
    s = Stream(range(10)).filter(lambda x: x != 1).map(_boom_at(5), on_error="skip", name="b")
    async with s.open() as it:
        got = [x async for x in it]
        entry = it.dead_letters["b"].entries[0]
    assert got == [0, 2, 3, 4, 6, 7, 8, 9]
    assert entry.item == 5 and entry.index == 4  # 5 is the 5th item the map saw
