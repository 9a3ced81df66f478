"""Operator fusion: runs of per-item operators compiled into ONE async generator.

A chain like ``map -> filter -> monitor -> batch`` written as nested async generators pays a
generator hand-off (~60 ns) per item per stage. Here each run of fusable operators becomes one
generated generator whose loop body applies them in line - ``x = f0(x)``, ``if not f1(x):
continue``, a local counter for a monitor - and yields only what leaves the run (for a trailing
``batch``, one list per ``size`` items). The code is generated once per *shape* of the run and
cached; the functions and state are passed in as arguments, so nothing is shared between runs.

When a user function raises, the generated frame's line number tells which operator it was,
and the exception gets a note naming that operator and the item index
(:func:`streamnb.recovery.annotate`); the exception itself propagates unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .recovery import SKIP, annotate


@dataclass
class Fragment:
    """One operator's contribution to a fused loop.

    ``body`` lines use ``x`` (the current item), ``i`` (items entered into the run) and the
    operator's own names suffixed with ``{j}``; ``params`` maps those names to values.
    ``tail`` lines run after the source is exhausted (a partial batch); ``final`` lines run
    on every exit with ``_exc`` set (monitors publish their last counts).
    """

    label: str
    body: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    init: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    final: list[str] = field(default_factory=list)
    one_to_one: bool = True
    ends_run: bool = False


_CACHE: dict[tuple[Any, ...], Callable[..., AsyncIterator[Any]]] = {}


def _shape(frags: list[Fragment], sync_source: bool) -> tuple[Any, ...]:
    return (
        sync_source,
        tuple(
            (tuple(f.body), tuple(f.init), tuple(f.tail), tuple(f.final), tuple(f.params))
            for f in frags
        ),
    )


def _compile(frags: list[Fragment], sync_source: bool) -> tuple[Callable[..., Any], dict[int, int]]:
    names: list[str] = []
    for f in frags:
        names.extend(f.params)
    lines = ["async def _run(_src, _P, _SKIP, _note):"]
    lines.append(f"    ({', '.join(names)}{',' if len(names) == 1 else ''}) = _P" if names else "    pass")
    lines.append("    i = 0")
    lines.append("    x = None")
    lines.append("    _exc = None")
    for f in frags:
        lines.extend("    " + s for s in f.init)
    lines.append("    try:")
    loop_line = len(lines) + 1
    lines.append("        for x in _src:" if sync_source else "        async for x in _src:")
    lines.append("            i += 1")
    linemap: dict[int, int] = {}
    for j, f in enumerate(frags):
        for s in f.body:
            lines.append("            " + s)
            linemap[len(lines)] = j
    lines.append("            yield x")
    for j, f in enumerate(frags):
        for s in f.tail:
            lines.append("        " + s)
            linemap[len(lines)] = j
    lines.append("    except BaseException as _e:")
    lines.append("        _exc = _e")
    lines.append("        _note(_e, i, x)")
    lines.append("        raise")
    lines.append("    finally:")
    for f in frags:
        lines.extend("        " + s for s in f.final)
    if not sync_source:
        lines.append("        await _src.aclose()")
    else:
        lines.append("        _close = getattr(_src, 'close', None)")
        lines.append("        if _close is not None:")
        lines.append("            _close()")
    lines.append("        pass")
    src = "\n".join(lines) + "\n"
    ns: dict[str, Any] = {}
    exec(compile(src, "<streamnb fused stage>", "exec"), ns)
    linemap[loop_line] = -1
    return ns["_run"], linemap


def fuse(
    frags: list[Fragment], src: AsyncIterator[Any] | Iterator[Any], sync_source: bool
) -> AsyncIterator[Any]:
    """One async generator applying ``frags`` in order to every item of ``src``."""
    key = _shape(frags, sync_source)
    hit = _CACHE.get(key)
    if hit is None:
        fn, linemap = _compile(frags, sync_source)
        _LINEMAPS[key] = linemap
        _CACHE[key] = fn
    else:
        fn = hit
    linemap = _LINEMAPS[key]
    params: list[Any] = []
    for f in frags:
        params.extend(f.params.values())
    labels = [f.label for f in frags]
    exact = []
    ok = True
    for f in frags:
        exact.append(ok)
        ok = ok and f.one_to_one

    def note(exc: BaseException, i: int, x: Any) -> None:
        if isinstance(exc, GeneratorExit | KeyboardInterrupt | SystemExit) or _is_cancel(exc):
            return
        tb = exc.__traceback__
        j = linemap.get(tb.tb_lineno) if tb is not None else None
        if j is None:
            return
        if j == -1:
            if sync_source:
                annotate(exc, "source", i, "<next item>")
            return
        if any(n.startswith("streamnb:") for n in getattr(exc, "__notes__", ())):
            return
        index = i - 1 if exact[j] else None
        annotate(exc, labels[j], index, x)

    gen: AsyncIterator[Any] = fn(src, tuple(params), SKIP, note)
    return gen


_LINEMAPS: dict[tuple[Any, ...], dict[int, int]] = {}


def _is_cancel(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, asyncio.CancelledError)
