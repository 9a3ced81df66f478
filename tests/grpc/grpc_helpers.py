"""Helpers shared by the gRPC tests (imported as ``grpc_helpers``: tests/grpc is on sys.path).

The leak checks live in ``tests/task_helpers.py`` (shared with the HTTP tests).
"""

from __future__ import annotations

from task_helpers import no_new_tasks, other_tasks

__all__ = ["no_new_tasks", "other_tasks"]
