"""Constants shared by the HTTP tests (imported as ``http_helpers``: tests/http is on sys.path)."""

from __future__ import annotations

#: The key the test server requires on its chat route.
API_KEY = "sk-test-0123456789abcdef"
