"""The typed events of a streamed chat completion (frozen dataclasses, one class per kind).

A ``chat(...)`` Stream yields, in order: :class:`TokenDelta` for each piece of text,
:class:`ToolCall` for each tool call once its arguments are complete (they arrive in pieces
and are parsed here, once), :class:`Usage` when the server reports token counts, and exactly
one :class:`Finish` last. Each has a ``kind`` (``"token"``, ``"tool_call"``, ``"usage"``,
``"finish"``) and ``as_dict()``, so a router can ``match`` on the class or switch on ``kind``.

Example::

    async for event in chat(url, model, messages, tools=tools):
        match event:
            case TokenDelta(text=text):
                print(text, end="")
            case ToolCall(name=name, arguments=args):
                result = run_tool(name, **args)
            case Finish(reason=reason):
                print("\\n", reason)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

__all__ = ["ChatEvent", "Finish", "TokenDelta", "ToolCall", "Usage"]


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """A piece of the answer's text; ``index`` is its position among the answer's tokens."""

    kind: ClassVar[str] = "token"
    text: str
    index: int

    def as_dict(self) -> dict[str, Any]:
        """A plain dict with ``kind`` (for pandas, logs, JSON)."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call: ``arguments`` parsed from the JSON the model streamed.

    ``id`` is the model's call id (send it back as ``tool_call_id``); ``raw_arguments`` the JSON
    text as received; ``index`` the call's position in the answer's tool calls.
    """

    kind: ClassVar[str] = "tool_call"
    id: str
    name: str
    arguments: dict[str, Any] = field(hash=False)
    raw_arguments: str
    index: int

    def as_dict(self) -> dict[str, Any]:
        """A plain dict with ``kind``."""
        return {"kind": self.kind, **asdict(self)}

    def as_message(self) -> dict[str, Any]:
        """This call as it goes back in the assistant message of the next request."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.raw_arguments},
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts the server reported for the request."""

    kind: ClassVar[str] = "usage"
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    def as_dict(self) -> dict[str, Any]:
        """A plain dict with ``kind``."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True, slots=True)
class Finish:
    """The last event: why the model stopped (``"stop"``, ``"tool_calls"``, ``"length"``...),
    and how many tokens and tool calls the answer had."""

    kind: ClassVar[str] = "finish"
    reason: str
    tokens: int
    tool_calls: int

    def as_dict(self) -> dict[str, Any]:
        """A plain dict with ``kind``."""
        return {"kind": self.kind, **asdict(self)}


#: Any event of a chat Stream.
ChatEvent = TokenDelta | ToolCall | Usage | Finish
