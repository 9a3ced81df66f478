"""Named aggregations for windows: count, sum, mean, min, max, first, last, var/std, quantiles.

An aggregation reads one value per item (a field name, a function of the item, or the item
itself) and folds it into an :class:`Accumulator` - a small object with ``add``, ``merge`` (to
join two partial results, e.g. when two sessions become one) and ``result``. Keyed windows keep
one set of accumulators per open window.

Give aggregations as a mapping of output column -> spec, like pandas' named aggregation::

    aggs = {
        "count": "count",                          # rows in the window
        "mean_ms": ("latency_ms", "mean"),         # (field or function, name)
        "p95_ms": ("latency_ms", "p95"),           # approximate, see below
        "spread": Agg.std("latency_ms"),           # the same, spelled out
        "kinds": Agg.reduce(lambda acc, v: acc | {v}, frozenset(), "kind"),   # your reducer
    }

Numeric aggregations skip ``None`` and NaN values, as pandas does; ``count`` counts rows.
``var``/``std`` are sample statistics (``ddof=1``, pandas' default) computed with Welford's
update and Chan's merge, so they stay accurate on large values with a small spread. ``first``
and ``last`` follow arrival order.

Quantiles (``p50``, ``p95``, ``p99``, ``Agg.quantile(field, q)``) use Datadog's DDSketch
(``pip install 'streamnb[analysis]'``): a mergeable sketch with a *relative* error bound
(1 % by default) and bounded memory, a well-kept library rather than a sketch of our own.
It is imported only when a quantile is asked for, so ``import streamnb`` stays stdlib-only;
without it a quantile spec fails up front with :class:`~streamnb.errors.MissingExtraError`.

Example::

    aggs = compile_aggs("stats", {"n": "count", "avg": ("v", "mean")})
    state = aggs.new()
    for item in [{"v": 1.0}, {"v": 3.0}]:
        aggs.add(state, item)
    aggs.results(state)          # {'n': 2, 'avg': 2.0}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol, cast

from ._validate import check_number
from .errors import ArgumentTypeError, InvalidArgumentError, MissingExtraError

__all__ = [
    "AGGREGATIONS",
    "Accumulator",
    "Agg",
    "Aggregations",
    "FlatAggregations",
    "compile_aggs",
]

_arrival = itertools.count()


class Accumulator(Protocol):
    """A partial aggregate: fold values in, join another partial of the same kind, read it."""

    def add(self, value: Any) -> None: ...

    def merge(self, other: Any) -> None: ...

    def result(self) -> Any: ...


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


class _Count:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def add(self, value: Any) -> None:
        self.n += 1

    def merge(self, other: _Count) -> None:
        self.n += other.n

    def result(self) -> int:
        return self.n


class _Sum:
    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total: Any = 0

    def add(self, value: Any) -> None:
        if value is None or value != value:  # None or NaN: skipped, like pandas
            return
        self.total += value

    def merge(self, other: _Sum) -> None:
        self.total += other.total

    def result(self) -> Any:
        return self.total


class _Mean:
    __slots__ = ("n", "total")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def add(self, value: Any) -> None:
        if value is None or value != value:
            return
        self.n += 1
        self.total += value

    def merge(self, other: _Mean) -> None:
        self.n += other.n
        self.total += other.total

    def result(self) -> float:
        return self.total / self.n if self.n else math.nan


class _Min:
    __slots__ = ("best",)

    def __init__(self) -> None:
        self.best: Any = None

    def add(self, value: Any) -> None:
        if value is None or value != value:
            return
        if self.best is None or value < self.best:
            self.best = value

    def merge(self, other: _Min) -> None:
        if other.best is not None:
            self.add(other.best)

    def result(self) -> Any:
        return math.nan if self.best is None else self.best


class _Max(_Min):
    __slots__ = ()

    def add(self, value: Any) -> None:
        if value is None or value != value:
            return
        if self.best is None or value > self.best:
            self.best = value


class _First:
    __slots__ = ("seq", "value")

    def __init__(self) -> None:
        self.seq = -1
        self.value: Any = None

    def add(self, value: Any) -> None:
        if self.seq < 0:
            self.seq = next(_arrival)
            self.value = value

    def merge(self, other: _First) -> None:
        if other.seq >= 0 and (self.seq < 0 or other.seq < self.seq):
            self.seq, self.value = other.seq, other.value

    def result(self) -> Any:
        return self.value


class _Last(_First):
    __slots__ = ()

    def add(self, value: Any) -> None:
        self.seq = next(_arrival)
        self.value = value

    def merge(self, other: _First) -> None:
        if other.seq > self.seq:
            self.seq, self.value = other.seq, other.value


class _Moments:
    """Welford's running mean and sum of squared deviations; Chan et al.'s parallel merge."""

    __slots__ = ("m2", "mean", "n", "std")

    def __init__(self, std: bool = False) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.std = std

    def add(self, value: Any) -> None:
        if value is None or value != value:
            return
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def merge(self, other: _Moments) -> None:
        if other.n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2 = other.n, other.mean, other.m2
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n

    def result(self) -> float:
        if self.n < 2:
            return math.nan
        var = self.m2 / (self.n - 1)
        return math.sqrt(var) if self.std else var


class _Quantile:
    """A DDSketch (relative accuracy ``accuracy``) answering one quantile ``q``."""

    __slots__ = ("q", "sketch")

    def __init__(self, q: float, accuracy: float) -> None:
        from ddsketch import DDSketch

        self.q = q
        self.sketch = DDSketch(relative_accuracy=accuracy)

    def add(self, value: Any) -> None:
        if value is None or value != value:
            return
        self.sketch.add(value)

    def merge(self, other: _Quantile) -> None:
        if other.sketch.count:
            self.sketch.merge(other.sketch)

    def result(self) -> float:
        if not self.sketch.count:
            return math.nan
        got = self.sketch.get_quantile_value(self.q)
        return math.nan if got is None else float(got)


class _Reduce:
    __slots__ = ("acc", "combine", "fn", "seen")

    def __init__(
        self, fn: Callable[[Any, Any], Any], initial: Any, combine: Callable[[Any, Any], Any] | None
    ) -> None:
        self.fn = fn
        self.acc = initial
        self.combine = combine
        self.seen = False

    def add(self, value: Any) -> None:
        self.acc = self.fn(self.acc, value)
        self.seen = True

    def merge(self, other: _Reduce) -> None:
        if not other.seen:
            return
        if self.combine is None:
            raise InvalidArgumentError(
                "Agg.reduce: two partial results must be merged (a session window joined "
                "another); give combine=(acc_a, acc_b) -> acc"
            )
        self.acc = self.combine(self.acc, other.acc) if self.seen else other.acc
        self.seen = True

    def result(self) -> Any:
        return self.acc


#: The aggregation names a spec may use (``"p95"`` style quantiles are also accepted).
AGGREGATIONS = ("count", "sum", "mean", "min", "max", "first", "last", "var", "std")
_QUANTILE_NAMES = {"median": 0.5, "p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
_DEFAULT_ACCURACY = 0.01


def _require_ddsketch(where: str) -> None:
    try:
        import ddsketch  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            f"{where}: quantiles need DDSketch - pip install 'streamnb[analysis]' "
            f"(or pip install ddsketch); {exc}"
        ) from exc


@dataclass(frozen=True)
class Agg:
    """One named aggregation: which value to read (``field``) and how to fold it (``make``).

    ``field`` is a key of dict items, a function of the item, or None for the item itself.
    Build them with the class methods (``Agg.mean("latency")``) or the shorthand specs that
    :func:`compile_aggs` accepts.
    """

    kind: str
    field: str | Callable[[Any], Any] | None
    make: Callable[[], Accumulator]

    @classmethod
    def count(cls) -> Agg:
        """Rows in the window."""
        return cls("count", None, _Count)

    @classmethod
    def sum(cls, field: Any = None) -> Agg:
        """Sum of the values (None/NaN skipped)."""
        return cls("sum", field, _Sum)

    @classmethod
    def mean(cls, field: Any = None) -> Agg:
        """Arithmetic mean (NaN for no values)."""
        return cls("mean", field, _Mean)

    @classmethod
    def min(cls, field: Any = None) -> Agg:
        """Smallest value."""
        return cls("min", field, _Min)

    @classmethod
    def max(cls, field: Any = None) -> Agg:
        """Largest value."""
        return cls("max", field, _Max)

    @classmethod
    def first(cls, field: Any = None) -> Agg:
        """The value of the first item to arrive."""
        return cls("first", field, _First)

    @classmethod
    def last(cls, field: Any = None) -> Agg:
        """The value of the last item to arrive."""
        return cls("last", field, _Last)

    @classmethod
    def var(cls, field: Any = None) -> Agg:
        """Sample variance (ddof=1), numerically stable."""
        return cls("var", field, _Moments)

    @classmethod
    def std(cls, field: Any = None) -> Agg:
        """Sample standard deviation (ddof=1), numerically stable."""
        return cls("std", field, lambda: _Moments(std=True))

    @classmethod
    def quantile(cls, field: Any, q: float, *, accuracy: float = _DEFAULT_ACCURACY) -> Agg:
        """Approximate ``q``-quantile within relative ``accuracy`` (DDSketch, extra
        ``[analysis]``)."""
        q = check_number("Agg.quantile", "q", q, minimum=0.0, maximum=1.0)
        accuracy = check_number(
            "Agg.quantile", "accuracy", accuracy, minimum=0.0, exclusive=True, maximum=0.5
        )
        _require_ddsketch(f"Agg.quantile(q={q:g})")
        return cls(f"q{q:g}", field, lambda: _Quantile(q, accuracy))

    @classmethod
    def reduce(
        cls,
        fn: Callable[[Any, Any], Any],
        initial: Any,
        field: Any = None,
        *,
        combine: Callable[[Any, Any], Any] | None = None,
    ) -> Agg:
        """Your reducer: ``acc = fn(acc, value)`` from ``initial``; ``combine(a, b)`` joins two
        partial results (needed by session windows, which merge)."""
        if not callable(fn):
            raise ArgumentTypeError(f"Agg.reduce(fn={fn!r}): expected a function (acc, value)")
        if combine is not None and not callable(combine):
            raise ArgumentTypeError(f"Agg.reduce(combine={combine!r}): expected a function")
        return cls("reduce", field, lambda: _Reduce(fn, initial, combine))


def _by_name(where: str, field: Any, name: str) -> Agg:
    if name == "count":
        return Agg.count()
    if name in _QUANTILE_NAMES:
        return Agg.quantile(field, _QUANTILE_NAMES[name])
    if name in AGGREGATIONS:
        made: Agg = getattr(Agg, name)(field)
        return made
    names = ", ".join([*AGGREGATIONS, *_QUANTILE_NAMES])
    raise InvalidArgumentError(f"{where}: unknown aggregation {name!r}; expected one of {names}")


def _parse(where: str, spec: Any) -> Agg:
    if isinstance(spec, Agg):
        return spec
    if isinstance(spec, str):
        return _by_name(where, None, spec)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str):
        field = spec[0]
        if not (field is None or isinstance(field, str | int) or callable(field)):
            raise ArgumentTypeError(
                f"{where}: the field of {spec!r} must be a key, a function or None"
            )
        return _by_name(where, field, spec[1])
    raise ArgumentTypeError(f"{where}: expected 'count', (field, 'mean') or an Agg, got {spec!r}")


class Aggregations:
    """A compiled set of named aggregations: ``new()`` state, ``add`` items, ``results``."""

    __slots__ = ("_aggs", "_getters", "_makers", "names")

    def __init__(self, names: tuple[str, ...], aggs: tuple[Agg, ...]) -> None:
        self.names = names
        self._aggs = aggs
        self._makers = tuple(a.make for a in aggs)
        self._getters = tuple(_getter(a.field) for a in aggs)

    def new(self) -> list[Any]:
        """Fresh accumulators, one per aggregation."""
        return [make() for make in self._makers]

    def add(self, state: list[Any], item: Any) -> None:
        """Fold ``item`` into ``state``."""
        for get, acc in zip(self._getters, state, strict=True):
            acc.add(item if get is None else get(item))

    def inline(self, state: str, item: str) -> tuple[list[str], dict[str, Any]]:
        """Python source lines folding ``item`` into ``state`` (variable names), and the
        names they use: the per-item step of a compiled window loop, with no call for
        count/sum/mean and one ``add`` call for the others (same results as :meth:`add`)."""
        lines: list[str] = []
        ns: dict[str, Any] = {}
        for i, a in enumerate(self._aggs):
            expr = _field_expr(a.field, i, item, ns)
            acc = f"{state}[{i}]"
            if a.make is _Count:
                lines.append(f"{acc}.n += 1")
            elif a.make is _Sum:
                lines += [f"v = {expr}", "if v is not None and v == v:", f"    {acc}.total += v"]
            elif a.make is _Mean:
                lines += [
                    f"v = {expr}",
                    "if v is not None and v == v:",
                    f"    a = {acc}",
                    "    a.n += 1",
                    "    a.total += v",
                ]
            else:
                lines.append(f"{acc}.add({expr})")
        return lines, ns

    def merge(self, state: list[Any], other: list[Any]) -> None:
        """Join ``other`` into ``state`` (both from :meth:`new`)."""
        for acc, more in zip(state, other, strict=True):
            acc.merge(more)

    def results(self, state: list[Any]) -> dict[str, Any]:
        """The current value of every aggregation, by output column (state is unchanged)."""
        return {name: acc.result() for name, acc in zip(self.names, state, strict=True)}

    def flat(self) -> FlatAggregations | None:
        """The same aggregations as plain numbers in one list (:class:`FlatAggregations`), or
        None unless every one is a count, sum or mean."""
        if all(a.make in (_Count, _Sum, _Mean) for a in self._aggs):
            return FlatAggregations(self.names, self._aggs)
        return None


class FlatAggregations:
    """Counts, sums and means kept as plain numbers in one list per window, for the fast path
    of a compiled window loop (what a hand-written loop keeps): ``state[0]`` counts the items,
    a sum has its total, a mean its total and the number of values it skipped (None / NaN),
    so that all counts and means share one item count. Results are those of
    :class:`Aggregations` (same values, same order of additions). No ``merge``: for windows
    that never join (tumbling).

    Example::

        flat = compile_aggs("stats", {"n": "count", "avg": ("v", "mean")}).flat()
        state = flat.new()                 # [0, 0.0, 0]
        flat.add(state, {"v": 1.0}); flat.add(state, {"v": None})
        flat.results(state)                # {'n': 2, 'avg': 1.0}
    """

    __slots__ = ("_getters", "_plan", "_template", "names")

    def __init__(self, names: tuple[str, ...], aggs: tuple[Agg, ...]) -> None:
        self.names = names
        template: list[Any] = [0]
        plan: list[tuple[Agg, int]] = []  # (aggregation, its first slot; 0 for a count)
        getters: list[Callable[[Any], Any] | None] = []
        for a in aggs:
            if a.make is _Count:
                plan.append((a, 0))
            elif a.make is _Sum:
                plan.append((a, len(template)))
                template.append(0)
            elif a.make is _Mean:
                plan.append((a, len(template)))
                template += [0.0, 0]
            else:
                raise InvalidArgumentError(
                    f"FlatAggregations: {a.kind!r} is not a count, sum or mean"
                )
            getters.append(_getter(a.field))
        self._template = template
        self._plan = tuple(plan)
        self._getters = tuple(getters)

    def new(self) -> list[Any]:
        """A fresh state: ``[0, ...]``."""
        return self._template.copy()

    def add(self, state: list[Any], item: Any) -> None:
        """Fold ``item`` into ``state``."""
        state[0] += 1
        for (a, slot), get in zip(self._plan, self._getters, strict=True):
            if slot == 0:
                continue
            v = item if get is None else get(item)
            if v is not None and v == v:
                state[slot] += v
            elif a.make is _Mean:
                state[slot + 1] += 1

    def inline(self, state: str, item: str) -> tuple[list[str], dict[str, Any]]:
        """Python source lines folding ``item`` into ``state`` (no call but your field
        functions), and the names they use (like :meth:`Aggregations.inline`)."""
        lines = [f"{state}[0] += 1"]
        ns: dict[str, Any] = {}
        for i, (a, slot) in enumerate(self._plan):
            if slot == 0:
                continue
            expr = _field_expr(a.field, i, item, ns)
            lines += [f"v = {expr}", "if v is not None and v == v:", f"    {state}[{slot}] += v"]
            if a.make is _Mean:
                lines += ["else:", f"    {state}[{slot + 1}] += 1"]
        return lines, ns

    def results(self, state: list[Any]) -> dict[str, Any]:
        """The current value of every aggregation, by output column (state is unchanged)."""
        out: dict[str, Any] = {}
        items = state[0]
        for name, (a, slot) in zip(self.names, self._plan, strict=True):
            if slot == 0:
                out[name] = items
            elif a.make is _Sum:
                out[name] = state[slot]
            else:
                n = items - state[slot + 1]
                out[name] = state[slot] / n if n else math.nan
        return out


def compile_aggs(where: str, aggs: Mapping[str, Any] | None) -> Aggregations:
    """Check and compile ``aggs`` (output column -> spec); ``None`` means ``{"count": "count"}``.

    Errors name ``where`` (the calling method) and the offending column, up front.
    """
    if aggs is None:
        aggs = {"count": "count"}
    if not isinstance(aggs, Mapping):
        raise ArgumentTypeError(
            f"{where}(aggs={aggs!r}): expected a mapping of column name -> aggregation"
        )
    if not aggs:
        raise InvalidArgumentError(f"{where}(aggs={{}}): give at least one aggregation")
    names: list[str] = []
    parsed: list[Agg] = []
    for name, spec in aggs.items():
        if not isinstance(name, str) or not name:
            raise ArgumentTypeError(
                f"{where}(aggs=...): column names must be strings, got {name!r}"
            )
        parsed.append(_parse(f"{where}(aggs[{name!r}])", spec))
        names.append(name)
    return Aggregations(tuple(names), tuple(parsed))


def _getter(field: Any) -> Callable[[Any], Any] | None:
    """How an aggregation reads its input from an item: None (the item itself), the field
    function, or an ``itemgetter`` of the field's key."""
    if field is None:
        return None
    if callable(field):
        return cast("Callable[[Any], Any]", field)
    return itemgetter(field)


def _field_expr(field: Any, i: int, item: str, ns: dict[str, Any]) -> str:
    """The source expression reading aggregation ``i``'s input from ``item`` in a compiled
    window loop: the item itself, ``item[field]``, or a call of the field function (bound in
    ``ns`` as ``_g<i>``)."""
    if field is None:
        return item
    if callable(field):
        ns[f"_g{i}"] = field
        return f"_g{i}({item})"
    return f"{item}[{field!r}]"
