"""An adaptive item step: look at the clock every N items, with N tuned to a target interval.

Reading the clock per item costs more than a fused operator does; reading it every N items is
free, but the right N depends on the stream's pace. :class:`AdaptiveStep` doubles N while
looks come faster than half the target interval and halves it when they come slower than
twice the target, so looks happen about every ``interval`` seconds: every item for a slow
stream, every ``max_step`` items at most for a fast one. The fused loop's ticker (metrics
publication, yielding to the event loop) and the notebook runner's consumer use it.

Example::

    step = AdaptiveStep(interval=0.002, max_step=1024)
    next_look = 1
    for n, item in enumerate(items, 1):
        if n >= next_look:
            next_look = n + step.update(time.monotonic())
"""

from __future__ import annotations

import time

__all__ = ["AdaptiveStep"]


class AdaptiveStep:
    """How many items to let pass before the next look at the clock (see module docstring)."""

    __slots__ = ("fast", "last", "max_step", "slow", "step")

    def __init__(self, interval: float, max_step: int, *, now: float | None = None) -> None:
        self.fast = interval / 2
        self.slow = interval * 2
        self.max_step = max_step
        self.step = 1
        self.last = time.monotonic() if now is None else now

    def update(self, now: float) -> int:
        """Record a look at ``now``; return the number of items until the next one."""
        dt = now - self.last
        self.last = now
        if dt < self.fast:
            if self.step < self.max_step:
                self.step = min(self.step * 2, self.max_step)
        elif dt > self.slow and self.step > 1:
            self.step //= 2
        return self.step

    def reset(self, now: float) -> None:
        """Forget the time of the last look (after a pause that was no part of the pace)."""
        self.last = now
