"""The state of one run of a Stream: what its stages registered, readable as snapshots.

A Stream is a definition and never holds state; each iteration builds a fresh
:class:`RunState` and every stage that has something to show registers an
:class:`~streamnb.metrics.Observable` on it (a monitor's meter, a buffer, a concurrent stage,
a resilient source, a gRPC call, a Dask stage). Readers - the dashboard, logs, your code -
ask the run for :meth:`RunState.snapshots`: frozen dataclasses, in pipeline order.

Example::

    async with stream.open() as it:           # it.state is this run's RunState
        async for _ in it:
            ...
        for name, snap in it.snapshots().items():
            print(name, snap)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .metrics import Observable, Snapshot
    from .recovery import DeadLetter
    from .window import Window

__all__ = ["ObservableKind", "RunState"]

#: The kinds of observables a run holds; names are unique within a kind.
ObservableKind = Literal["monitor", "buffer", "concurrency", "resilient", "call"]


class RunState:
    """Everything one iteration of a Stream built and registered.

    ``observe(kind, obj)`` registers a live object answering ``snapshot()``;
    ``snapshots(kind=None)`` reads them. ``dead_letters`` and ``windows`` are the run's
    error sinks and windows by stage name; ``roots`` are the source iterators, closed when
    the run ends.
    """

    __slots__ = ("_observed", "dead_letters", "roots", "windows")

    def __init__(self) -> None:
        self._observed: list[tuple[ObservableKind, Observable]] = []
        self.dead_letters: dict[str, DeadLetter[Any]] = {}
        self.windows: dict[str, Window] = {}
        self.roots: list[Any] = []

    def observe(self, kind: ObservableKind, obj: Observable) -> None:
        """Register ``obj`` (its ``name`` must be unique among this run's ``kind``)."""
        name = obj.name
        if any(k == kind and o.name == name for k, o in self._observed):
            raise InvalidArgumentError(
                f"two {kind} stages are both named {name!r} in one stream; give them "
                "different names"
            )
        self._observed.append((kind, obj))

    def unique(self, table: dict[str, Any], name: str, what: str) -> str:
        """``name`` if ``table`` has no such key yet, else a clear error naming ``what``."""
        if name in table:
            raise InvalidArgumentError(
                f"two {what} stages are both named {name!r} in one stream; give them "
                "different names"
            )
        return name

    def free_name(self, kind: ObservableKind, base: str) -> str:
        """``base``, or ``base#2``, ``base#3``... : the first name no ``kind`` has yet (for
        stages named by default, such as two ``map(fn, concurrency=N)`` of one ``fn``)."""
        taken = {o.name for k, o in self._observed if k == kind}
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}#{n}"
        return name

    def count(self, kind: ObservableKind) -> int:
        """How many observables of ``kind`` are registered (for default names)."""
        return sum(1 for k, _ in self._observed if k == kind)

    def observed(self, kind: ObservableKind | None = None) -> dict[str, Observable]:
        """The live observables (of one ``kind``, or all) by name, in pipeline order."""
        return {o.name: o for k, o in self._observed if kind is None or k == kind}

    def snapshots(self, kind: ObservableKind | None = None) -> dict[str, Snapshot]:
        """A frozen snapshot of every observable (of one ``kind``, or all), in pipeline order.

        With ``kind=None`` the keys are ``"kind:name"`` so equal names of different kinds
        (a monitor and a buffer both called ``"feed"``) stay apart.
        """
        if kind is not None:
            return {o.name: o.snapshot() for k, o in self._observed if k == kind}
        return {f"{k}:{o.name}": o.snapshot() for k, o in self._observed}
