"""The compact text progress line for terminals, plain scripts and CI logs.

On a terminal (a TTY) the line is redrawn in place with ``\\r`` at the run's refresh rate; in a
log (not a TTY) a new line is written at most every ``log_interval`` seconds so that CI logs stay
short. The final state is always written, followed by one line per monitored stage, then one
compact line per resilient source (reconnects, failures), per gRPC call (counters) and per
keyed window stage (windows, keys, late items, watermark).

Example::

    view = TextProgress(sys.stderr)
    view.update(frame)     # 'pipeline [#####.....]  50% 500/1,000 items · 250/s · 0:02 ...'
    view.close(frame)      # the final line, then the stage summary
"""

from __future__ import annotations

import sys
from typing import TextIO

from ._format import (
    RunFrame,
    call_lines,
    format_latency,
    format_rate,
    keyed_lines,
    progress_for,
    resilient_lines,
    stage_rows,
)

__all__ = ["TextProgress", "text_line"]

_BAR_WIDTH = 20


def text_line(frame: RunFrame, *, bar_width: int = _BAR_WIDTH) -> str:
    """One line describing ``frame``: name, a bar when the fraction is known, the counts.

    Example::

        text_line(frame)   # 'etl [##########..........]  50% 500/1,000 items · 250/s · 0:02 ...'
    """
    view = progress_for(frame)
    parts = [view.label]
    if view.fraction is not None:
        filled = round(view.fraction * bar_width)
        parts.append(f"[{'#' * filled}{'.' * (bar_width - filled)}] {view.fraction * 100:3.0f}%")
    if view.status != "running":
        parts.append(view.status)
    parts.append(view.text)
    return " ".join(parts)


class TextProgress:
    """A run view that prints :func:`text_line` to a text stream (``sys.stderr`` by default).

    ``log_interval`` (seconds) spaces the lines written when the stream is not a terminal.
    Timing comes from the frames' ``taken_at``, so the view reads no clock.
    """

    def __init__(self, file: TextIO | None = None, *, log_interval: float = 10.0) -> None:
        self.file = file if file is not None else sys.stderr
        isatty = getattr(self.file, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        self.log_interval = log_interval
        self._next_log: float | None = None
        self._width = 0
        self.closed = False

    def update(self, frame: RunFrame) -> None:
        """Show ``frame`` (in place on a TTY; as a new log line when the interval has passed)."""
        if self.closed:
            return
        if self.tty:
            self._redraw(text_line(frame))
        elif self._next_log is None or frame.taken_at >= self._next_log:
            self._next_log = frame.taken_at + self.log_interval
            self.file.write(text_line(frame) + "\n")
            self.file.flush()

    def close(self, frame: RunFrame) -> None:
        """Write the final state and a summary line per stage; later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        line = text_line(frame)
        if self.tty:
            self._redraw(line)
            self.file.write("\n")
        else:
            self.file.write(line + "\n")
        for row, snap in zip(stage_rows(frame.stages), frame.stages.values(), strict=True):
            self.file.write(
                f"  {row.name}: {row.status}, {row.items} items, "
                f"{format_rate(snap.rate)}, errors {row.errors}, dropped {row.dropped}, "
                f"latency {format_latency(snap.latency)}\n"
            )
        for line in resilient_lines(frame.resilient.values()):
            self.file.write(f"  resilient {line}\n")
        for line in call_lines(frame.calls.values()):
            self.file.write(f"  call {line}\n")
        for line in keyed_lines(frame.keyed.values()):
            self.file.write(f"  keyed {line}\n")
        self.file.flush()

    def _redraw(self, line: str) -> None:
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.file.write("\r" + line + " " * pad)
        self.file.flush()
