"""Where is this code running? A notebook frontend (widgets), or a terminal/log (text).

Like ``tqdm.auto``: a kernel started by ``IPKernelApp`` (Jupyter, nbclient, VS Code) with
ipywidgets importable gets the widget dashboard; everything else gets the text line. The
``STREAMNB_DISPLAY`` environment variable (``widget``, ``text`` or ``none``) overrides the guess.

Example::

    display_mode()   # 'widget' in JupyterLab, 'text' in python script.py
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Literal

from ..errors import InvalidArgumentError

__all__ = [
    "DisplayMode",
    "current_cell_key",
    "current_request_id",
    "display_mode",
    "in_notebook",
    "show",
]

DisplayMode = Literal["widget", "text", "none"]


def _shell() -> Any:
    try:
        ipython: Any = importlib.import_module("IPython")
    except ImportError:
        return None
    return ipython.get_ipython()


def show(obj: Any, **kwargs: Any) -> None:
    """``IPython.display.display(obj, **kwargs)`` (typed wrapper)."""
    module: Any = importlib.import_module("IPython.display")
    module.display(obj, **kwargs)


def in_notebook() -> bool:
    """True inside a Jupyter kernel that can show ipywidgets."""
    shell = _shell()
    if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
        return False
    return importlib.util.find_spec("ipywidgets") is not None


def display_mode(requested: bool | str = True) -> DisplayMode:
    """Resolve a ``display=`` argument: ``True``/``"auto"`` guesses, ``False`` means none.

    Raises :class:`~streamnb.errors.InvalidArgumentError` (a ``ValueError``) for an unknown
    mode.
    """
    if requested is False or requested == "none":
        return "none"
    if requested is True or requested == "auto":
        env = os.environ.get("STREAMNB_DISPLAY", "").strip().lower()
        if env in ("widget", "text", "none"):
            return env  # type: ignore[return-value]
        return "widget" if in_notebook() else "text"
    if requested in ("widget", "text"):
        return requested  # type: ignore[return-value]
    raise InvalidArgumentError(
        f"display={requested!r}: use True (auto), False, 'widget', 'text' or 'none'"
    )


def _parent() -> dict[str, Any]:
    shell = _shell()
    kernel = getattr(shell, "kernel", None)
    get_parent = getattr(kernel, "get_parent", None)
    if callable(get_parent):
        try:
            parent = get_parent()
        except Exception:  # a kernel without a current request (no cell running)
            return {}
        return parent if isinstance(parent, dict) else {}
    return {}


def current_cell_key() -> str | None:
    """The id of the notebook cell being executed (JupyterLab sends it), else None."""
    meta = _parent().get("metadata") or {}
    cell = meta.get("cellId") or meta.get("cell_id")
    return str(cell) if cell else None


def current_request_id() -> str | None:
    """The msg_id of the execute request being handled, to tell one cell run from another."""
    header = _parent().get("header") or {}
    msg_id = header.get("msg_id")
    return str(msg_id) if msg_id else None
