"""The embedded demo server and the live terminal demo (``python -m streamnb.demo``).

Needs the ``grpc`` extra (``pip install streamnb[grpc]``), and the ``http`` extra for the HTTP
side (``DemoServer(http=True)``, :mod:`streamnb.demo.http`). See :mod:`streamnb.demo.server`.
"""

from __future__ import annotations

from .server import SERVICE_NAMES, DemoServer, ServedCall, answer_prompt

__all__ = ["SERVICE_NAMES", "DemoServer", "ServedCall", "answer_prompt"]
