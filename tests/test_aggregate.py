"""Named aggregations: exact against the statistics module / pandas, quantiles within bound."""

from __future__ import annotations

import math
import random
import statistics
import subprocess
import sys

import pytest

from streamnb.aggregate import Agg, compile_aggs
from streamnb.errors import ArgumentTypeError, InvalidArgumentError, MissingExtraError


def _fold(aggs: dict[str, object], items: list[object]) -> dict[str, object]:
    c = compile_aggs("test", aggs)
    state = c.new()
    for x in items:
        c.add(state, x)
    return c.results(state)


def test_basic_aggregations_match_the_statistics_module() -> None:
    rnd = random.Random(3)
    items = [{"v": rnd.gauss(10, 3), "k": i} for i in range(500)]
    vs = [x["v"] for x in items]
    got = _fold(
        {
            "n": "count",
            "s": ("v", "sum"),
            "m": ("v", "mean"),
            "lo": ("v", "min"),
            "hi": ("v", "max"),
            "f": ("k", "first"),
            "l": ("k", "last"),
            "var": ("v", "var"),
            "sd": Agg.std("v"),
        },
        items,
    )
    assert got["n"] == 500
    assert got["s"] == pytest.approx(sum(vs))
    assert got["m"] == pytest.approx(statistics.fmean(vs))
    assert got["lo"] == min(vs)
    assert got["hi"] == max(vs)
    assert got["f"] == 0
    assert got["l"] == 499
    assert got["var"] == pytest.approx(statistics.variance(vs), rel=1e-12)
    assert got["sd"] == pytest.approx(statistics.stdev(vs), rel=1e-12)


def test_variance_is_numerically_stable_on_large_offsets() -> None:
    # the naive sum-of-squares formula loses every digit here
    vs = [1e9 + x for x in (4.0, 7.0, 13.0, 16.0)] * 1000
    got = _fold({"var": (None, "var")}, vs)
    assert got["var"] == pytest.approx(statistics.variance(vs), rel=1e-9)


def test_merge_equals_one_pass_chan_merge() -> None:
    rnd = random.Random(5)
    vs = [rnd.uniform(-1e6, 1e6) for _ in range(1001)]
    c = compile_aggs(
        "t",
        {
            "n": "count",
            "var": (None, "var"),
            "m": (None, "mean"),
            "lo": (None, "min"),
            "hi": (None, "max"),
            "f": (None, "first"),
            "l": (None, "last"),
            "s": (None, "sum"),
        },
    )
    a, b, whole = c.new(), c.new(), c.new()
    for v in vs[:400]:
        c.add(a, v)
    for v in vs[400:]:
        c.add(b, v)
    for v in vs:
        c.add(whole, v)
    c.merge(a, b)
    ra, rw = c.results(a), c.results(whole)
    assert ra["n"] == rw["n"] == 1001
    for k in ("var", "m", "s"):
        assert ra[k] == pytest.approx(rw[k], rel=1e-9)
    assert ra["f"] == vs[0]
    assert ra["lo"] == rw["lo"] and ra["hi"] == rw["hi"]


def test_missing_values_are_skipped_like_pandas() -> None:
    got = _fold(
        {"n": "count", "s": (None, "sum"), "m": (None, "mean"), "lo": (None, "min")},
        [1.0, None, math.nan, 3.0],
    )
    assert got == {"n": 4, "s": 4.0, "m": 2.0, "lo": 1.0}
    empty = _fold({"m": (None, "mean"), "v": (None, "var"), "lo": (None, "min")}, [None])
    assert all(math.isnan(v) for v in empty.values())  # type: ignore[arg-type]


def test_quantiles_are_within_the_relative_accuracy_of_exact_ones() -> None:
    rnd = random.Random(11)
    vs = [rnd.lognormvariate(3, 1) for _ in range(20_000)]
    got = _fold(
        {
            "p50": (None, "p50"),
            "p95": (None, "p95"),
            "p99": (None, "p99"),
            "q9": Agg.quantile(None, 0.9, accuracy=0.005),
        },
        vs,
    )
    exact = sorted(vs)

    def rank(q: float) -> float:  # the lower-rank definition DDSketch answers
        return exact[int(q * (len(exact) - 1))]

    for name, q, acc in (
        ("p50", 0.5, 0.01),
        ("p95", 0.95, 0.01),
        ("p99", 0.99, 0.01),
        ("q9", 0.9, 0.005),
    ):
        assert abs(got[name] - rank(q)) <= acc * rank(q) + 1e-12, name  # type: ignore[operator]


def test_quantile_sketches_merge() -> None:
    c = compile_aggs("t", {"p95": (None, "p95")})
    a, b = c.new(), c.new()
    for v in range(1, 1001):
        c.add(a if v % 2 else b, float(v))
    c.merge(a, b)
    assert c.results(a)["p95"] == pytest.approx(950, rel=0.011)


def test_user_reducer_and_its_merge() -> None:
    c = compile_aggs(
        "t",
        {
            "kinds": Agg.reduce(
                lambda acc, v: acc | {v}, frozenset(), "k", combine=lambda a, b: a | b
            )
        },
    )
    a, b = c.new(), c.new()
    c.add(a, {"k": "x"})
    c.add(b, {"k": "y"})
    c.merge(a, b)
    assert c.results(a)["kinds"] == frozenset({"x", "y"})
    no_combine = compile_aggs("t", {"r": Agg.reduce(lambda acc, v: acc + v, 0)})
    a, b = no_combine.new(), no_combine.new()
    no_combine.add(a, 1)
    no_combine.add(b, 2)
    with pytest.raises(InvalidArgumentError, match="combine="):
        no_combine.merge(a, b)


@pytest.mark.parametrize(
    ("aggs", "exc", "fragment"),
    [
        ({"x": "median_ish"}, InvalidArgumentError, "unknown aggregation 'median_ish'"),
        ({"x": ("v", "avg")}, InvalidArgumentError, r"aggs\['x'\]"),
        ({"x": 3}, ArgumentTypeError, "expected 'count'"),
        ({}, InvalidArgumentError, "at least one"),
        ([("x", "count")], ArgumentTypeError, "mapping"),
        ({"x": ([1], "sum")}, ArgumentTypeError, "field"),
        ({"x": Agg.quantile("v", 0.5)}, None, None),
    ],
)
def test_bad_specs_fail_up_front_naming_the_column(
    aggs: object, exc: type[Exception] | None, fragment: str | None
) -> None:
    if exc is None:
        compile_aggs("tumbling", aggs)  # type: ignore[arg-type]
        return
    with pytest.raises(exc, match=fragment):
        compile_aggs("tumbling", aggs)  # type: ignore[arg-type]


def test_quantile_arguments_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="q="):
        Agg.quantile("v", 1.5)
    with pytest.raises(InvalidArgumentError, match="nan"):
        Agg.quantile("v", math.nan)


def test_quantiles_without_ddsketch_fail_with_the_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['ddsketch'] = None\n"
        "from streamnb.aggregate import compile_aggs\n"
        "from streamnb.errors import MissingExtraError\n"
        "try:\n"
        "    compile_aggs('tumbling', {'p': ('v', 'p95')})\n"
        "except MissingExtraError as e:\n"
        "    print('OK', isinstance(e, ImportError), e)\n"
        "compile_aggs('tumbling', {'m': ('v', 'mean')}); print('mean fine')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("OK True")
    assert "streamnb[analysis]" in out.stdout
    assert "mean fine" in out.stdout
    assert issubclass(MissingExtraError, ImportError)


def test_flat_counts_sums_and_means_equal_the_accumulators() -> None:
    rnd = random.Random(11)
    aggs = {
        "mean": ("v", "mean"),
        "n": "count",
        "total": ("v", "sum"),
        "sq": (lambda x: None if x["v"] is None else x["v"] * 2, "sum"),
        "mean_w": ("w", "mean"),
    }
    items = [
        {"v": rnd.choice([None, math.nan, rnd.randint(-5, 5), rnd.random()]), "w": None}
        for _ in range(300)
    ]
    compiled = compile_aggs("test", aggs)
    flat = compiled.flat()
    assert flat is not None and flat.names == compiled.names
    state = flat.new()
    for x in items:
        flat.add(state, x)
    got = flat.results(state)
    want = _fold(aggs, items)
    assert list(got) == list(want) and math.isnan(got.pop("mean_w"))  # no value: NaN
    want.pop("mean_w")
    assert got == want  # the same additions in the same order: equal, not approximately
    empty = flat.results(flat.new())
    assert (empty["n"], empty["total"], type(empty["total"])) == (0, 0, int)
    assert math.isnan(empty["mean"]) and math.isnan(empty["mean_w"])
    # what a compiled loop runs: the inlined lines fold the same way
    lines, ns = flat.inline("s", "item")
    fold = "def fold(s, item):\n" + "\n".join("    " + ln for ln in lines)
    exec(fold, ns)
    inlined = flat.new()
    for x in items:
        ns["fold"](inlined, x)
    assert inlined == state
    assert compile_aggs("test", {"n": "count", "lo": ("v", "min")}).flat() is None
