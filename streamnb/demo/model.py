"""The demo servers' deterministic "model": what it answers to a prompt, over gRPC or HTTP.

Pure functions, no server library: ``Agent.Chat`` (gRPC) and ``/v1/chat/completions`` (HTTP)
both answer with :func:`answer_prompt`, so the agent notebook gets the same answers whichever
transport it uses.

Example::

    >>> [e["kind"] for e in answer_prompt(1, "what is the weather")]
    ['tool_call', 'token', 'token', 'token', 'token', 'token', 'token', 'done']
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["TOOL_WORDS", "answer_prompt", "answer_tokens", "tool_word"]

#: Words that make the model call a tool of that name (the first one found in the prompt).
TOOL_WORDS: tuple[str, ...] = ("weather", "time", "calc", "search")


def tool_word(text: str) -> str | None:
    """The tool ``text`` asks for (the first of :data:`TOOL_WORDS` it contains), or None."""
    lowered = text.lower()
    return next((w for w in TOOL_WORDS if w in lowered), None)


def answer_prompt(prompt_id: int, text: str) -> list[dict[str, Any]]:
    """The deterministic answer of ``Agent.Chat`` to one prompt, as JSON-ready dicts.

    A ``tool_call`` first when ``text`` contains a tool word (weather, time, calc, search; the
    first one found), then one ``token`` per word of ``"You said: " + text`` (tokens after the
    first start with a space, so joining them gives the sentence back), then ``done``.

    >>> [e["kind"] for e in answer_prompt(1, "hi")]
    ['token', 'token', 'token', 'done']
    """
    events: list[dict[str, Any]] = []
    tool = tool_word(text)
    if tool is not None:
        args = json.dumps({"query": text}, sort_keys=True)
        events.append({"kind": "tool_call", "name": tool, "arguments": args})
    tokens = answer_tokens(text)
    events.extend({"kind": "token", "text": t} for t in tokens)
    events.append({"kind": "done", "tokens": len(tokens)})
    for index, event in enumerate(events):
        event["prompt_id"] = prompt_id
        event["index"] = index
    return events


def answer_tokens(text: str) -> list[str]:
    """The tokens of ``"You said: " + text``: words, each after the first with a leading space.

    >>> "".join(answer_tokens("hello  there"))
    'You said: hello there'
    """
    words = ["You", "said:", *text.split()]
    return [words[0]] + [" " + w for w in words[1:]]
