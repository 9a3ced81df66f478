"""Operator fusion: runs of per-item operators compiled into ONE async generator.

A chain like ``map -> filter -> monitor -> batch`` written as nested async generators pays a
generator hand-off (~60 ns) per item per stage. Here each run of fusable operators becomes one
generated generator whose loop body applies them in line - ``x = f_0(x)``, ``if not p_1(x):
continue``, a local counter for a monitor - and yields only what leaves the run (for a trailing
``batch``, one list per ``size`` items). The code is generated once per *shape* of the run and
cached; the functions and state are passed in as arguments, so nothing is shared between runs.

What an operator contributes is a :class:`~streamnb.operators.base.Fragment` (the protocol is
documented there). This module allocates every name: an operator's ``$name`` becomes
``name_<j>`` for the j-th fused operator, and ``$index`` / ``$count`` become the run's counter
``i`` when only one-to-one operators precede it, else a counter ``_n<j>`` the fuser adds. The
same rule gives the item index of error notes, so it cannot disagree with the body.

When a user function raises, the generated frame's line number tells which operator it was,
and the exception gets a note naming that operator and the item index
(:func:`streamnb.recovery.annotate`); the exception itself propagates unchanged.
"""

from __future__ import annotations

import asyncio
import io
import time
import tokenize
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from string import Template
from typing import TYPE_CHECKING, Any

from ._cancel import is_stray, stray_error
from ._clock import AdaptiveStep
from ._probe import Probed
from .errors import ArgumentTypeError
from .metrics import MAX_PUBLISH_STEP, PUBLISH_INTERVAL
from .recovery import SKIP, annotate

if TYPE_CHECKING:
    from .operators.base import Fragment

__all__ = ["cached_shapes", "fuse", "one_to_one"]


class _Ticker:
    """The run's periodic duty, done every ``step`` items instead of per item.

    Each tick reads the clock once. Every ``PUBLISH_INTERVAL`` (20 ms) it publishes the counts
    of the run's monitors to their meters; every ``_YIELD_EVERY`` it asks the run to give the
    event loop a turn (a fused loop over a fast source would otherwise starve the dashboard
    timer, widget buttons and the kernel). The :class:`~streamnb._clock.AdaptiveStep` makes
    ticks come about every millisecond or two: every item for a slow stream, every
    ``MAX_PUBLISH_STEP`` items at most for a fast one.
    """

    __slots__ = ("adapt", "clock", "due", "last_pub", "last_yield", "meters", "unstarted")

    def __init__(self, meters: list[Any]) -> None:
        self.meters = meters
        self.clock = time.monotonic
        self.last_yield = now = self.clock()
        self.adapt = AdaptiveStep(_TICK_INTERVAL, MAX_PUBLISH_STEP, now=now)
        self.last_pub = float("-inf")
        self.unstarted = bool(meters)  # some meter still waits for its first item
        self.due = False

    def tick(self, counts: tuple[tuple[int, int, Any], ...]) -> int:
        now = self.clock()
        if self.unstarted or now - self.last_pub >= PUBLISH_INTERVAL:
            self.last_pub = now
            for m, (n, b, last) in zip(self.meters, counts, strict=True):
                m.publish(n, b, last)
            self.unstarted = any(m.first_t is None for m in self.meters)
        if now - self.last_yield >= _YIELD_EVERY:
            self.due = True
        return self.adapt.update(now)

    async def pause(self) -> None:
        self.due = False
        await asyncio.sleep(0)
        self.last_yield = self.clock()


#: target seconds between two ticks of a fused loop
_TICK_INTERVAL = 0.002
_YIELD_EVERY = 0.02
_NOWHERE = 1 << 30  # "no operator raised"


def one_to_one(body: Sequence[str]) -> bool:
    """True when ``body`` neither drops an item (``continue``) nor ends the loop (``break``)."""
    # placeholders become plain names, indentation goes: only the words matter here
    src = "\n".join(s.strip().replace("$", "_") for s in body) + "\n"
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, IndentationError):
        toks = []
    return not any(t.type == tokenize.NAME and t.string in ("continue", "break") for t in toks)


class _Placed:
    """One fragment with its names allocated (the j-th operator of a fused run)."""

    __slots__ = (
        "body",
        "counted",
        "exact",
        "final",
        "init",
        "label",
        "probing",
        "publish",
        "tail",
    )

    def __init__(self, j: int, label: str, frag: Fragment, exact: bool) -> None:
        self.label = label
        self.exact = exact
        texts = [
            *frag.body,
            *(frag.probing or ()),
            *frag.tail,
            *frag.final,
            *(frag.publish or ()),
            *frag.locals.values(),
        ]
        used = {n for t in texts if t for n in Template(t).get_identifiers()}
        # a counter of this operator's input when the run's own counter is not it
        self.counted = not exact and (frag.calls_user or bool(used & {"index", "count"}))
        names: dict[str, str] = {}
        for n in (*frag.params, *frag.locals):
            if n in ("index", "count") or n in names or not n.isidentifier():
                raise ArgumentTypeError(f"{label}: fragment name {n!r} is reserved or repeated")
            names[n] = f"{n}_{j}"
        counter = f"_n{j}"

        def sub(lines: Sequence[str], count: str) -> list[str]:
            index = "(i - 1)" if exact else f"({counter} - 1)"
            mapping = {**names, "index": index, "count": count}
            try:
                return [Template(s).substitute(mapping) for s in lines]
            except (KeyError, ValueError) as exc:
                raise ArgumentTypeError(
                    f"{label}: its fragment uses ${exc.args[0]}, which it does not declare "
                    "in params or locals"
                ) from None

        body_count = "i" if exact else counter
        self.body = ([f"{counter} += 1"] if self.counted else []) + sub(frag.body, body_count)
        self.probing = (
            ([f"{counter} += 1"] if self.counted else []) + sub(frag.probing, body_count)
            if frag.probing is not None
            else None
        )
        self.init = [f"{counter} = 0"] if self.counted else []
        self.init += [f"{names[n]} = {sub([e], 'None')[0]}" for n, e in frag.locals.items() if e]
        self.tail = sub(frag.tail, body_count)
        self.final = sub(frag.final, f"i - (_fj <= {j})" if exact else counter)
        self.publish = (
            "(" + ", ".join(sub(frag.publish, "i - 1" if exact else counter)) + ")"
            if frag.publish is not None
            else None
        )


_CACHE: dict[tuple[Any, ...], tuple[Callable[..., AsyncIterator[Any]], dict[int, int]]] = {}


def cached_shapes() -> int:
    """How many shapes of fused runs have been compiled so far (the code cache's size)."""
    return len(_CACHE)


def _compile(
    placed: list[_Placed], names: list[str], sync_source: bool, counts: str
) -> tuple[Callable[..., Any], dict[int, int]]:
    lines = ["async def _run(_src, _P, _SKIP, _note, _T):"]
    lines.append(
        f"    ({', '.join(names)}{',' if len(names) == 1 else ''}) = _P" if names else "    pass"
    )
    lines.append("    i = 0")
    lines.append("    x = None")
    lines.append("    _exc = None")
    lines.append(f"    _fj = {_NOWHERE}")  # index of the operator that raised, if any
    lines.append("    _K = 1")
    for p in placed:
        lines.extend("    " + s for s in p.init)
    linemap: dict[int, int] = {}
    loop = "for x in _src:" if sync_source else "async for x in _src:"

    def emit_loop(pad: str, probing: bool) -> None:
        linemap[len(lines) + 1] = -1  # the source's line: a failure of the source
        lines.append(pad + loop)
        lines.append(pad + "    i += 1")
        lines.append(pad + "    if i >= _K:")
        lines.append(pad + f"        _K = i + _T.tick({counts})")
        lines.append(pad + "        if _T.due:")
        lines.append(pad + "            await _T.pause()")
        for j, p in enumerate(placed):
            for s in (p.probing or p.body) if probing else p.body:
                lines.append(pad + "    " + s)
                linemap[len(lines)] = j
        lines.append(pad + "    yield x")

    probes = sum(p.probing is not None for p in placed)
    if probes:
        lines.append(f"    _up = {probes}")  # plain user functions not probed yet
        lines.append("    _switch = False")
    lines.append("    try:")
    if probes:
        # the first items run through the probing form of the body until every plain user
        # function has shown whether its results must be awaited (streamnb._probe); then the
        # loop switches to the plain body, the same code as without probes. A stage whose
        # results are awaitable keeps the probing form (it never lets _up reach 0).
        emit_loop("        ", probing=True)
        lines.append("            if not _up:")
        lines.append("                _switch = True")
        lines.append("                break")
        lines.append("        if _switch:")
        emit_loop("            ", probing=False)
    else:
        emit_loop("        ", probing=False)
    for j, p in enumerate(placed):
        for s in p.tail:
            lines.append("        " + s)
            linemap[len(lines)] = j
    lines.append("    except BaseException as _e:")
    lines.append("        _fj, _exc = _note(_e, i, x, locals())")
    lines.append("        if _exc is not _e:")  # a stray CancelledError, replaced
    lines.append("            raise _exc from _e")
    lines.append("        raise")
    lines.append("    finally:")
    for p in placed:
        lines.extend("        " + s for s in p.final)
    close = "aclose" if not sync_source else "close"
    lines.append(f"        _close = getattr(_src, {close!r}, None)")
    lines.append("        if _close is not None:")
    lines.append("            await _close()" if not sync_source else "            _close()")
    src = "\n".join(lines) + "\n"
    ns: dict[str, Any] = {"_Probed": Probed}
    exec(compile(src, "<streamnb fused stage>", "exec"), ns)
    return ns["_run"], linemap


def fuse(
    frags: Sequence[tuple[str, Fragment]],
    src: AsyncIterator[Any] | Iterator[Any],
    sync_source: bool,
) -> AsyncIterator[Any]:
    """One async generator applying ``frags`` (``(label, fragment)`` pairs) in order to every
    item of ``src``."""
    placed: list[_Placed] = []
    exact = True
    for j, (label, frag) in enumerate(frags):
        placed.append(_Placed(j, label, frag, exact))
        exact = exact and one_to_one(frag.body)
    meters = [f.meter for _, f in frags if f.publish is not None]
    counts = "(" + "".join(p.publish + ", " for p in placed if p.publish is not None) + ")"
    names = [n + f"_{j}" for j, (_, f) in enumerate(frags) for n in f.params]
    key = (
        sync_source,
        counts,
        tuple(names),
        tuple(
            (tuple(p.body), tuple(p.probing or ()), tuple(p.init), tuple(p.tail), tuple(p.final))
            for p in placed
        ),
    )
    hit = _CACHE.get(key)
    if hit is None:
        hit = _CACHE[key] = _compile(placed, names, sync_source, counts)
    fn, linemap = hit
    params = [v for _, f in frags for v in f.params.values()]

    def note(
        exc: BaseException, i: int, x: Any, scope: dict[str, Any]
    ) -> tuple[int, BaseException]:
        """Annotate ``exc``; return the index of the operator that raised (else a big int)
        and the exception that ends the run: ``exc`` itself, or the
        :class:`~streamnb.errors.StrayCancelledError` replacing a stray ``CancelledError``."""
        if isinstance(exc.__context__, Probed):
            exc.__context__ = None  # raised while awaiting a probed result: not a cause
        tb = exc.__traceback__
        j = linemap.get(tb.tb_lineno) if tb is not None else None
        if j is None or j == -1:
            if j == -1 and is_stray(exc):
                return _NOWHERE, stray_error("the source", exc, index=i)
            if j == -1 and sync_source and not _quiet(exc):
                annotate(exc, "source", i, "<next item>")
            return _NOWHERE, exc
        p = placed[j]
        index: int | None
        if p.exact:
            index = i - 1
        elif p.counted:
            index = scope[f"_n{j}"] - 1
        else:
            index = None
        if is_stray(exc):
            return j, stray_error(p.label, exc, index=index, item=x)
        if _quiet(exc) or any(n.startswith("streamnb:") for n in getattr(exc, "__notes__", ())):
            return j, exc
        annotate(exc, p.label, index, x)
        return j, exc

    gen: AsyncIterator[Any] = fn(src, tuple(params), SKIP, note, _Ticker(meters))
    return gen


def _quiet(exc: BaseException) -> bool:
    """Ways of ending that are not failures of an operator: no note for them."""
    return isinstance(exc, GeneratorExit | KeyboardInterrupt | SystemExit | asyncio.CancelledError)
