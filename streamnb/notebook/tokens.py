"""A live token view: streamed text rendered as Markdown in place, a few times a second.

An LLM streams tokens far faster than a notebook frontend can re-render Markdown, so
:class:`TokenView` appends every token to its text (cheap) and re-renders only when
``1 / hz`` seconds have passed since the last render; :meth:`TokenView.close` always renders
the final text, exactly. The throttle is the pure :class:`TokenText` (no IPython), so its
behaviour is testable with a fake clock.

In a notebook the view is one output area updated in place (``IPython.display`` with a
``display_id``); elsewhere (a script) nothing is shown until ``close()``, which prints the text.

Example::

    from streamnb.http import chat
    from streamnb.notebook.tokens import TokenView

    view = TokenView(title="answer")
    text = await view.show(chat(url, model, messages))    # renders as tokens arrive

    # or as a stage of a pipeline: .tap(view.update), then view.close()
"""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncIterable, Callable
from typing import Any

from .._validate import check_number

__all__ = ["DEFAULT_HZ", "TokenText", "TokenView"]

#: Renders per second of a TokenView unless told otherwise.
DEFAULT_HZ = 4.0


class TokenText:
    """Accumulated text plus the throttle that decides when it is worth rendering.

    ``add(piece)`` appends and returns True when a render is due (the first piece, then at
    most ``hz`` times per second); ``rendered()`` records that the current text was shown.

    >>> clock = iter([0.0, 0.1, 0.2, 0.3]).__next__
    >>> t = TokenText(hz=4, clock=clock)
    >>> [t.add(p) for p in ("a", "b", "c", "d")]
    [True, False, False, True]
    """

    __slots__ = ("_clock", "_interval", "_last", "_parts", "_shown", "pieces")

    def __init__(self, *, hz: float = DEFAULT_HZ, clock: Callable[[], float] = time.monotonic):
        rate = check_number("TokenText", "hz", hz, minimum=0.0, exclusive=True)
        self._interval = 1.0 / rate
        self._clock = clock
        self._parts: list[str] = []
        self._last: float | None = None
        self._shown = 0  # pieces included in the last render
        self.pieces = 0

    @property
    def text(self) -> str:
        """Everything added so far, exactly."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def stale(self) -> bool:
        """True when pieces arrived since the last render."""
        return self.pieces != self._shown

    def add(self, piece: str) -> bool:
        """Append ``piece``; True when a render is due now."""
        self._parts.append(piece)
        self.pieces += 1
        now = self._clock()
        if self._last is None or now - self._last >= self._interval:
            self._last = now
            return True
        return False

    def rendered(self) -> None:
        """The current text has been shown."""
        self._shown = self.pieces


class TokenView:
    """Streamed text shown as Markdown in one place, re-rendered at most ``hz`` times a second.

    ``update(event)`` takes a token event (anything with ``kind == "token"`` and ``text``, like
    :class:`streamnb.http.TokenDelta`) or a plain ``str``, and ignores other events, so it can
    be a ``Stream.tap``. ``close()`` renders the final text exactly and returns it. ``title``
    is shown in bold above the text. ``render`` replaces the notebook display (a function of the
    Markdown source), e.g. for tests.
    """

    def __init__(
        self,
        *,
        hz: float = DEFAULT_HZ,
        title: str | None = None,
        render: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._text = TokenText(hz=hz, clock=clock)
        self.title = title
        self._render = render
        self._handle: Any = None
        self._closed = False
        #: How many times the text was rendered (the throttle keeps this small).
        self.renders = 0

    @property
    def text(self) -> str:
        """The text so far (exact, whatever has been rendered)."""
        return self._text.text

    def write(self, piece: str) -> None:
        """Append ``piece``; re-render if the throttle allows."""
        if self._text.add(piece):
            self._show()

    def update(self, event: Any) -> None:
        """Append a token event's text (or a str); other events are ignored."""
        if isinstance(event, str):
            self.write(event)
        elif getattr(event, "kind", None) == "token":
            self.write(str(event.text))

    def close(self) -> str:
        """Render the final text (exactly what was written) and return it."""
        if not self._closed:
            self._closed = True
            if self._text.stale or self.renders == 0:
                self._show(final=True)
            elif self._render is None and self._handle is None:
                print(self.text)
        return self.text

    async def show(self, events: AsyncIterable[Any]) -> str:
        """Consume ``events`` (a chat Stream, any async iterable of tokens), render, return the
        final text. The view is closed even if the stream fails."""
        try:
            async for event in events:
                self.update(event)
        finally:
            self.close()
        return self.text

    def _markdown(self) -> str:
        body = self.text
        return f"**{self.title}**\n\n{body}" if self.title else body

    def _show(self, *, final: bool = False) -> None:
        source = self._markdown()
        self._text.rendered()
        self.renders += 1
        if self._render is not None:
            self._render(source)
            return
        try:
            ipython: Any = importlib.import_module("IPython")
            display: Any = importlib.import_module("IPython.display")
        except ImportError:  # no IPython: print the final text only
            if final:
                print(source)
            return
        if ipython.get_ipython() is None:
            if final:
                print(source)
            return
        if self._handle is None:
            self._handle = display.display(display.Markdown(source), display_id=True)
        else:
            self._handle.update(display.Markdown(source))
