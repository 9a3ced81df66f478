"""streamnb's loggers: structlog, with quiet defaults for an application that set up nothing.

Every event has a stable name (``streamnb.<area>.<event>``, e.g. ``streamnb.metrics``,
``streamnb.grpc.call_failed``). When your application has configured structlog
(``structlog.is_configured()``), streamnb's events go through your configuration unchanged.
When it has not - a fresh notebook, a script - structlog's built-in default would print every
event, debug included, into the cell output; streamnb then emits only warnings and errors, to
stderr. Configure structlog (any ``structlog.configure(...)``) to see the rest::

    import logging, structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_QUIET: dict[str, Any] = {}


class _Logger:
    """A structlog logger resolved at each event, so configuring structlog later still counts."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def _target(self) -> Any:
        if structlog.is_configured():
            return structlog.get_logger(self._name)
        quiet = _QUIET.get(self._name)
        if quiet is None:
            quiet = _QUIET[self._name] = structlog.wrap_logger(
                structlog.PrintLogger(sys.stderr),
                processors=structlog.get_config()["processors"],
                wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            )
        return quiet

    def debug(self, event: str, **kw: Any) -> None:
        self._target().debug(event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._target().info(event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._target().warning(event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._target().error(event, **kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._target().exception(event, **kw)


def get_logger(name: str) -> _Logger:
    """The logger streamnb modules use (see the module docstring)."""
    return _Logger(name)
