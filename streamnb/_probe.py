"""Plain callables that return awaitables: decided once, from the first result, for free.

``map(lambda x: fetch(x))`` passes a *plain* function that returns a coroutine. Calling it
without awaiting would yield coroutine objects (``map``), keep every item (``filter``: a
coroutine is truthy) or never run the side effect (``tap``, ``for_each``) - silently wrong.
Checking every result would cost every plain function a test per item. Instead a fused
stage calls a plain function through a :class:`Probe` the first time only: the probe raises
:class:`Probed` carrying the result and the function to call from then on, and the stage
rebinds its local name to it. A plain result rebinds the user's own function - the loop is
then exactly what it was, the ``try`` around the call is free in CPython 3.11+. An awaitable
result rebinds an awaiting variant that hands every later result over the same way, to be
awaited; a later result that is not awaitable raises a TypeError naming the stage.

What the fused stage runs, for ``x = f(x)``::

    try:
        x = f(x)
    except Probed as p:
        f = p.fn
        x = (await p.value) if p.awaited else p.value
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Probe", "Probed", "probed_lines"]


class Probed(BaseException):
    """Control flow between a :class:`Probe` and its fused stage (never escapes the stage).

    A BaseException, so that ``except Exception`` in user code or in an error policy never
    takes it for a failure of the function.
    """

    __slots__ = ("awaited", "fn", "value")

    def __init__(self, fn: Callable[..., Any], value: Any, awaited: bool) -> None:
        self.fn = fn
        self.value = value
        self.awaited = awaited


class Probe:
    """The first call of the plain function ``fn`` of stage ``label`` (module docstring)."""

    __slots__ = ("fn", "label")

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        self.fn = fn
        self.label = label

    def __call__(self, *args: Any) -> Any:
        y = self.fn(*args)
        if inspect.isawaitable(y):
            raise Probed(self.awaiting, y, True)
        raise Probed(self.fn, y, False)

    def awaiting(self, *args: Any) -> Any:
        """Every call after an awaitable first result: hand the result over to be awaited."""
        y = self.fn(*args)
        if not inspect.isawaitable(y):
            raise TypeError(
                f"{self.label}: the function returned an awaitable for the first item, so its "
                f"results are awaited, but now it returned {type(y).__name__}; make it "
                "'async def' (or always return an awaitable)"
            )
        raise Probed(self.awaiting, y, True)


def probed_lines(lines: Sequence[str], call: str, fn: str, probe: str) -> tuple[str, ...]:
    """Fragment lines running ``lines`` - which contain the call expression ``call`` to the
    plain function named ``fn`` - with the first-call probe (see the module docstring).

    ``probe`` names the local bound to the :class:`Probed` instance. Names may be fragment
    placeholders (``$f``); the result is used as a fragment body.
    """
    if not any(call in s for s in lines):
        raise ValueError(f"probed_lines: {call!r} does not occur in {list(lines)!r}")
    return (
        "try:",
        *("    " + s for s in lines),
        f"except _Probed as {probe}:",
        f"    {fn} = {probe}.fn",
        f"    if {probe}.awaited:",
        *("        " + s.replace(call, f"(await {probe}.value)") for s in lines),
        "    else:",
        "        _up -= 1",  # one plain function less to probe (the fuser's counter)
        *("        " + s.replace(call, f"{probe}.value") for s in lines),
    )
