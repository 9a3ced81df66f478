"""Window: bounded by count and by age, snapshot to pandas, hot path stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from streamnb.errors import StreamnbError
from streamnb.window import TIMESTAMP_COLUMN, Window, WindowConfigError, flatten_item


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_last_keeps_only_the_most_recent_items() -> None:
    w = Window(last=3)
    for i in range(10):
        w.append(i)
    assert len(w) == 3
    assert w.items() == [7, 8, 9]
    assert list(w) == [7, 8, 9]


def test_last_memory_is_bounded_whatever_the_stream_length() -> None:
    w = Window(last=100)
    for i in range(100_000):
        w.append(i)
    assert len(w._data) == 100
    assert w.items()[0] == 99_900


def test_seconds_window_drops_items_older_than_its_span() -> None:
    clock = FakeClock()
    w = Window(seconds=10)
    w._clock = clock
    w._next_prune = clock.t + w._prune_every
    for i in range(5):
        w.append(i)
        clock.t += 1.0
    clock.t += 7.5  # items 0..4 arrived at 1000..1004, now is 1012.5: 0, 1, 2 are too old
    assert w.items() == [3, 4]
    assert len(w) == 2


def test_seconds_window_prunes_on_the_hot_path_too() -> None:
    clock = FakeClock()
    w = Window(seconds=1)
    w._clock = clock
    w._next_prune = clock.t + w._prune_every
    for i in range(10_000):
        w.append(i)
        clock.t += 0.01  # 100 items per second of fake time
    # never read, yet bounded: at most one span plus one prune period of items
    assert len(w._data) <= 100 + 100 * w._prune_every + 1


def test_seconds_window_has_a_hard_item_bound() -> None:
    w = Window(seconds=3600, max_items=50)
    for i in range(1000):
        w.append(i)
    assert len(w) == 50


def test_both_bounds_apply() -> None:
    w = Window(last=2, seconds=60)
    for i in range(5):
        w.append(i)
    assert w.items() == [3, 4]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "give last=N"),
        ({"last": 0}, "last must be"),
        ({"last": True}, "last must be"),
        ({"seconds": 0}, "seconds must be"),
        ({"seconds": -1.0}, "seconds must be"),
        ({"seconds": 1.0, "max_items": 0}, "max_items"),
    ],
)
def test_invalid_configurations_are_rejected(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(WindowConfigError, match=fragment) as info:
        Window(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, StreamnbError)
    assert isinstance(info.value, ValueError)


def test_to_pandas_dict_items_become_flattened_columns() -> None:
    w = Window(last=10)
    w.append({"id": 1, "pos": {"x": 1.5, "y": {"z": 2}}, "tag": "a"})
    w.append({"id": 2, "pos": {"x": 2.5, "y": {"z": 3}}})
    df = w.to_pandas()
    assert list(df.columns) == [TIMESTAMP_COLUMN, "id", "pos.x", "pos.y.z", "tag"]
    assert df["id"].tolist() == [1, 2]
    assert df["pos.y.z"].tolist() == [2, 3]
    assert df["tag"].isna().tolist() == [False, True]
    assert isinstance(df[TIMESTAMP_COLUMN].dtype, pd.DatetimeTZDtype)
    assert df[TIMESTAMP_COLUMN].is_monotonic_increasing


def test_to_pandas_other_items_use_a_value_column() -> None:
    w = Window(last=5)
    for i in range(8):
        w.append(i * 10)
    df = w.to_pandas()
    assert list(df.columns) == [TIMESTAMP_COLUMN, "value"]
    assert df["value"].tolist() == [30, 40, 50, 60, 70]
    now = pd.Timestamp.now(tz="UTC")
    assert (now - df[TIMESTAMP_COLUMN]).max() < pd.Timedelta(minutes=5)


def test_to_pandas_on_an_empty_window() -> None:
    df = Window(last=3).to_pandas()
    assert len(df) == 0
    assert TIMESTAMP_COLUMN in df.columns


def test_a_user_column_named_like_the_timestamp_is_kept() -> None:
    w = Window(last=3)
    w.append({TIMESTAMP_COLUMN: "mine", "v": 1})
    df = w.to_pandas()
    assert df[f"{TIMESTAMP_COLUMN}.item"].tolist() == ["mine"]
    assert isinstance(df[TIMESTAMP_COLUMN].dtype, pd.DatetimeTZDtype)


def test_tail_returns_wall_clock_pairs_oldest_first() -> None:
    w = Window(last=10)
    for i in range(6):
        w.append(i)
    tail = w.tail(3)
    assert [item for _, item in tail] == [3, 4, 5]
    assert all(t > 1e9 for t, _ in tail)  # wall-clock seconds, not monotonic
    assert w.tail(0) == []


def test_flatten_item() -> None:
    assert flatten_item({"a": 1, "b": {"c": 2, "d": {}}}) == {"a": 1, "b.c": 2, "b.d": {}}
    assert flatten_item([1, 2]) == {"value": [1, 2]}


def test_repr_names_the_bounds() -> None:
    w = Window(last=4, seconds=2.5, name="recent")
    w.append(1)
    assert repr(w) == "Window(last=4, seconds=2.5, name='recent', len=1)"


def test_importing_streamnb_does_not_import_pandas() -> None:
    code = (
        "import sys, streamnb, streamnb.window, streamnb.notebook; print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_stream_window_is_readable_while_and_after_running() -> None:
    from streamnb import Stream

    s = Stream({"i": i, "sq": {"v": i * i}} for i in range(1000)).window(last=10, name="w")
    async with s.open() as it:
        seen = 0
        async for _ in it:
            seen += 1
            if seen == 500:
                mid = it.windows["w"].to_pandas()
                assert len(mid) == 10
                assert mid["i"].tolist() == list(range(490, 500))
        final = it.windows["w"].to_pandas()
    assert final["sq.v"].tolist() == [i * i for i in range(990, 1000)]


# -- columnar storage: same table as row-by-row flattening, whatever the mix of items ---------
def _reference(items: list[object]) -> pd.DataFrame:
    rows = [flatten_item(x) for x in items]
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame()


def _mixed_items(n: int, seed: int) -> list[object]:
    import random

    rnd = random.Random(seed)
    out: list[object] = []
    for i in range(n):
        r = rnd.random()
        if r < 0.6:
            out.append({"id": i, "v": rnd.random(), "kind": rnd.choice("abc"), "ok": i % 3 == 0})
        elif r < 0.7:
            out.append({"id": i, "v": None, "kind": "z", "ok": False})
        elif r < 0.8:
            out.append({"id": i, "pos": {"x": i, "y": {"z": -i}}})
        elif r < 0.85:
            out.append({"id": i, "v": {"nested": i}, "kind": "n", "ok": True})  # same keys, dict
        elif r < 0.9:
            out.append(i * 10)
        elif r < 0.95:
            out.append({"only": str(i)})
        else:
            out.append({"id": 2**70, "v": i})  # an int too big for int64
    return out


@pytest.mark.parametrize("last", [1, 3, 50, 1000, 5000])
@pytest.mark.parametrize("seed", [0, 1])
def test_columnar_table_equals_row_by_row_flattening(last: int, seed: int) -> None:
    items = _mixed_items(4000, seed)
    w = Window(last=last)
    for x in items:
        w.append(x)
    kept = items[-last:]
    assert w.items() == kept
    assert len(w) == len(kept)
    got = w.to_pandas().drop(columns=[TIMESTAMP_COLUMN])
    want = _reference(kept)
    assert sorted(got.columns) == sorted(want.columns)
    got = got[list(want.columns)]
    pd.testing.assert_frame_equal(
        got.astype(object).where(got.notna(), None),
        want.astype(object).where(want.notna(), None),
        check_dtype=False,
    )


def test_flat_rows_keep_their_dtypes_and_the_stamps_stay_in_order() -> None:
    w = Window(last=3000)
    for i in range(5000):
        w.append({"i": i, "x": i / 2, "ok": i % 2 == 0, "s": f"k{i % 5}"})
    df = w.to_pandas()
    assert len(df) == 3000
    assert df["i"].tolist() == list(range(2000, 5000))
    assert str(df["i"].dtype) == "int64"
    assert str(df["x"].dtype) == "float64"
    assert str(df["ok"].dtype) == "bool"
    assert df[TIMESTAMP_COLUMN].is_monotonic_increasing
    assert w.tail(2) and [x["i"] for _, x in w.tail(2)] == [4998, 4999]


def test_columnar_memory_is_bounded_by_the_window_plus_one_chunk() -> None:
    w = Window(last=2000)
    for i in range(50_000):
        w.append({"i": i, "x": 1.0})
    store = w._data
    held = sum(len(c) for c in store.chunks)
    assert len(w) == 2000
    assert held <= 2000 + store.cap
    assert all(c.items is None for c in list(store.chunks)[:-1])  # sealed chunks let go of dicts


def test_dicts_with_non_string_keys_and_empty_dicts() -> None:
    w = Window(last=10)
    w.append({1: "a", 2: "b"})
    w.append({})
    w.append({1: "c", 2: "d"})
    df = w.to_pandas()
    assert len(df) == 3
    assert df["1"].tolist()[0] == "a"
    assert w.items() == [{1: "a", 2: "b"}, {}, {1: "c", 2: "d"}]


def test_clear_then_reuse() -> None:
    w = Window(last=5)
    for i in range(20):
        w.append({"i": i})
    w.clear()
    assert len(w) == 0
    assert w.items() == []
    w.append({"i": 99})
    assert w.to_pandas()["i"].tolist() == [99]


def test_appended_counts_every_item_evicted_and_cleared_ones_too() -> None:
    w = Window(last=100)
    assert w.appended == 0
    for i in range(2_500):
        w.append({"i": i})
    assert w.appended == 2_500 and len(w) == 100
    seen = w.appended
    for i in range(2_500, 2_507):
        w.append({"i": i})
    assert [row["i"] for _, row in w.tail(w.appended - seen)] == list(range(2_500, 2_507))
    w.clear()
    assert w.appended == 2_507 and len(w) == 0
    w.append({"i": -1})
    assert w.appended == 2_508
