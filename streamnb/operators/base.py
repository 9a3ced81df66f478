"""The operator protocol: what an operator is, and how it joins a fused loop.

An operator is one small class. Its constructor validates every argument up front (with
:mod:`streamnb._validate`), then, per run, the operator offers one or both forms:

* ``fragment(link) -> Fragment | None`` - its *fused* form: a few lines of Python that the
  fuser (:mod:`streamnb._fuse`) pastes into the loop of one generated async generator, with
  no generator hand-off per item. Return None when this configuration cannot be fused
  (``map(concurrency=N)``, ``batch(within=s)``).
* ``stage(src, link) -> AsyncIterator`` - its *unfused* form: an async iterator wrapping the
  upstream one (a worker pool, a buffer task...). The default runs the fragment on its own.

A :class:`Fragment` says, in its own names::

    Fragment(
        body=("if $last == x:", "    continue", "$last = x"),   # runs once per item
        params={"f": fn},              # values bound once per run (functions, constants)
        locals={"last": "_NOTHING"},   # per-run variables -> initial expression
        tail=(...),                    # after the source ended (a batch's partial chunk)
        final=(...),                   # on every exit, with ``_exc`` set (monitors)
        calls_user=True,               # it runs user code that may raise
    )

Lines refer to the current item as ``x`` and to the operator's own names as ``$name``; the
fuser *allocates* the real names (``$last`` becomes ``last_3`` in the 4th fused operator), so
no two operators can collide and none writes a suffix by hand. Names the fuser provides:

* ``$index`` - the index of the current item at this operator's input (0-based); the fuser
  knows it for every operator: the run's counter when only 1:1 operators come before,
  otherwise a counter it adds itself. A raising operator's error note uses the same index.
* ``$count`` - items that passed this point so far (for ``publish`` / ``final``): free after
  1:1 operators, a counter otherwise. This is how a ``monitor`` counts at no per-item cost.
* ``x``, ``_SKIP`` (the marker an error policy returns for a skipped item), ``_exc`` (in
  ``final``: the exception ending the run, or None).

Nothing is declared that the fuser can work out: an operator whose body contains ``continue``
(drops an item) or ``break`` (ends the stream) is not one-to-one, and one with a ``tail``
ends the fused run (what follows starts a new loop). ``calls_user`` only decides whether an
index is kept for error notes; its default (True) is the safe one.

Example - a complete new operator, fused wherever it stands::

    class Distinct(Operator):
        label = "distinct"

        def fragment(self, link: Link) -> Fragment:
            return Fragment(
                body=("if x in $seen:", "    continue", "$add(x)"),
                locals={"seen": "set()", "add": "$seen.add"},
                calls_user=False,
            )

    Stream(items).then(Distinct())
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._fuse import fuse
from .._iter import is_async_callable
from .._probe import Probe, probed_lines
from .._runstate import RunState
from ..metrics import BufferObservable
from ..recovery import DeadLetter

__all__ = ["Fragment", "Link", "Operator", "UserCall", "user_call"]


@dataclass(frozen=True, slots=True)
class Fragment:
    """One operator's contribution to a fused loop (see the module docstring).

    ``publish`` (monitors only) is the tuple of expressions ``(count, bytes, stamp)`` -
    ``stamp``: the latest item's timestamp, or None - handed to ``meter.publish`` every few
    milliseconds; ``meter`` is that meter.
    """

    body: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    #: the body the first items run through while plain user functions are probed (built by
    #: :func:`user_call`); None when there is nothing to probe
    probing: tuple[str, ...] | None = None
    locals: Mapping[str, str | None] = field(default_factory=dict)
    tail: tuple[str, ...] = ()
    final: tuple[str, ...] = ()
    calls_user: bool = True
    publish: tuple[str, str, str] | None = None
    meter: Any = None


class Link:
    """Where an operator stands in one run: the run's state and what the stage before it
    offers to a monitor placed right after it (a buffer, a dead-letter sink)."""

    __slots__ = ("buffer", "dead_letter", "prev", "run")

    def __init__(self, run: RunState, prev: Link | None = None) -> None:
        self.run = run
        self.prev = prev
        self.buffer: BufferObservable | None = None
        self.dead_letter: DeadLetter[Any] | None = None


class Operator:
    """Base of every operator: ``label`` names it in reprs and error notes."""

    label = "operator"

    def fragment(self, link: Link) -> Fragment | None:
        """The fused form, or None when this operator runs as its own stage."""
        return None

    def stage(self, src: AsyncIterator[Any], link: Link) -> AsyncIterator[Any]:
        """The unfused form; by default the fragment alone in a loop of its own."""
        frag = self.fragment(link)
        if frag is None:  # pragma: no cover - an operator must offer one of the two forms
            raise TypeError(f"{self.label}: neither a fragment nor a stage")
        return fuse([(self.label, frag)], src, sync_source=False)


@dataclass(frozen=True, slots=True)
class UserCall:
    """Fragment pieces for lines that call a user function (see :func:`user_call`)."""

    body: tuple[str, ...]
    probing: tuple[str, ...] | None
    params: dict[str, Any]
    locals: dict[str, str | None]

    def fragment(self, **kw: Any) -> Fragment:
        """The Fragment of these lines alone (``kw``: its other fields)."""
        return Fragment(
            body=self.body, probing=self.probing, params=self.params, locals=self.locals, **kw
        )


def user_call(
    lines: Sequence[str], fn: Callable[..., Any], label: str, name: str = "f", args: str = "x"
) -> UserCall:
    """The fused form of ``lines``, which call the user function ``fn`` as ``$<name>(<args>)``.

    An ``async def`` function is awaited. A plain one is called through the first-call probe
    of :mod:`streamnb._probe` in the ``probing`` form of the body, which the fused loop runs
    only until every plain function of the loop has answered once: when the first result is
    awaitable (``lambda x: fetch(x)``) every result is awaited, otherwise the loop switches to
    ``body`` - the lines exactly as written, so a plain function pays nothing per item. Every
    operator that calls user code builds its lines here, so none of them can silently yield,
    test or drop an un-awaited coroutine.

    Example::

        call = user_call(("if not $p(x):", "    continue"), predicate, "filter(ok)", "p")
        frag = call.fragment()
    """
    expr = f"${name}({args})"
    if is_async_callable(fn):
        awaited = tuple(s.replace(expr, f"await {expr}") for s in lines)
        return UserCall(awaited, None, {name: fn}, {})
    probe = f"probe_{name}"
    return UserCall(
        tuple(lines),
        probed_lines(lines, expr, f"${name}", f"${probe}"),
        {name: Probe(fn, label)},
        {probe: None},
    )
