"""Codecs: how Python objects become the bytes of a gRPC message, and back.

The adapter always moves *bytes* through grpc (identity serializers) and applies the codec
itself. That is what lets a message that fails to decode be reported with its method and index,
or be skipped to a dead-letter sink, instead of grpc cancelling the whole call.

Three families:

* :func:`json_codec` - dicts/lists/numbers as UTF-8 JSON (the catalogue's generic mode; the
  demo server's ``streamnb.demo.v1.Json`` service speaks it);
* :func:`protobuf_codec` - generated protobuf message classes (``Event.FromString``);
* :func:`raw_codec` - bytes in, bytes out.

Anywhere a codec is accepted you may pass a :data:`CodecLike`: ``"json"``, ``"raw"``, a
protobuf message class (the *response* type; requests are messages serialised as they are),
or a :class:`Codec`::

    codec = resolve_codec(Event)           # protobuf, responses decoded as Event
    codec.decode(codec.encode(Event(seq=3))).seq   # 3
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = [
    "Codec",
    "CodecLike",
    "dict_message_codec",
    "json_codec",
    "protobuf_codec",
    "raw_codec",
    "resolve_codec",
]


@dataclass(frozen=True, slots=True)
class Codec:
    """Two functions: ``encode(obj) -> bytes`` for requests, ``decode(bytes) -> obj`` for responses.

    ``name`` shows up in logs and reprs. Both functions run once per message on the call's hot
    path, so keep them plain (no I/O, no logging).

    Example::

        upper = Codec("upper", encode=lambda s: s.encode(), decode=lambda b: b.decode().upper())
    """

    name: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


CodecLike: TypeAlias = Literal["json", "raw", "bytes"] | Codec | type[Message]


def _json_encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def json_codec() -> Codec:
    """JSON over UTF-8: ``{"seq": 1}`` <-> ``b'{"seq":1}'`` (compact separators)."""
    return Codec("json", _json_encode, json.loads)


def _raw_encode(obj: Any) -> bytes:
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, bytearray | memoryview):
        return bytes(obj)
    raise TypeError(f"the raw codec sends bytes, got {type(obj).__name__}")


def _identity(data: bytes) -> bytes:
    return data


def raw_codec() -> Codec:
    """Bytes in, bytes out (bytearray and memoryview are accepted as requests)."""
    return Codec("raw", _raw_encode, _identity)


def _message_encoder(request_type: type[Message] | None) -> Callable[[Any], bytes]:
    def encode(obj: Any) -> bytes:
        if isinstance(obj, Message):
            return obj.SerializeToString()
        if request_type is not None and isinstance(obj, Mapping):
            return json_format.ParseDict(dict(obj), request_type()).SerializeToString()
        expected = request_type.__name__ if request_type is not None else "a protobuf message"
        raise TypeError(f"expected {expected} (or a dict of its fields), got {type(obj).__name__}")

    return encode


def protobuf_codec(
    response_type: type[Message], request_type: type[Message] | None = None
) -> Codec:
    """Protobuf messages: responses decoded as ``response_type``.

    Requests are protobuf messages (serialised as they are), or dicts of fields when
    ``request_type`` is given (converted with ``json_format.ParseDict``).
    """
    return Codec(
        f"protobuf:{response_type.DESCRIPTOR.full_name}",
        _message_encoder(request_type),
        response_type.FromString,
    )


def dict_message_codec(
    request_type: type[Message], response_type: type[Message], *, int64_as_str: bool = False
) -> Codec:
    """Dicts in, dicts out over protobuf messages (what reflection-based calls use).

    Requests: dicts of fields (``None`` = empty message) or messages; 64-bit integers may be
    given as ints or as decimal strings. Responses: ``json_format.MessageToDict`` with the proto
    field names (``payload_size``, not ``payloadSize``) and fields at their default value
    included - except that 64-bit integer fields (``int64``, ``uint64``, ``sint64``,
    ``fixed64``, ``sfixed64`` and the ``Int64Value``/``UInt64Value`` wrappers), which
    protobuf's JSON mapping turns into strings for JavaScript's sake, come back as Python ints,
    at any depth (nested and repeated messages, map values; map *keys* stay strings, as for
    every integer key in the JSON mapping). ``int64_as_str=True`` keeps the strings::

        codec = dict_message_codec(GetRequest, Event)
        codec.decode(Event(seq=7).SerializeToString())["seq"]     # 7, not "7"
    """
    from_string = response_type.FromString
    to_dict = json_format.MessageToDict
    encode_message = _message_encoder(request_type)
    plan = None if int64_as_str else _int64_plan(response_type.DESCRIPTOR)

    def encode(obj: Any) -> bytes:
        return encode_message({} if obj is None else obj)

    def decode(data: bytes) -> Any:
        d = to_dict(
            from_string(data),
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        if plan:
            _apply_int64_plan(d, plan)
        return d

    return Codec(f"dict:{response_type.DESCRIPTOR.full_name}", encode, decode)


# -- 64-bit integers as ints in response dicts -------------------------------------------------
#
# A plan lists, per message type, the fields of a MessageToDict dict that hold (or contain)
# 64-bit integers: (name, kind, sub-plan). It is computed once per codec from the descriptor, so
# messages without such fields cost nothing and the others only a walk over those fields.

_INT64_CPP_TYPES = frozenset({FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64})
_INT64_WRAPPERS = frozenset({"google.protobuf.Int64Value", "google.protobuf.UInt64Value"})
# kinds: a value itself, each item of a list, each value of a map - either an integer to
# convert ("int") or a message dict to walk with the sub-plan ("msg")
_Kind = Literal["int", "ints", "int_values", "msg", "msgs", "msg_values"]
_Plan: TypeAlias = "list[tuple[str, _Kind, _Plan]]"


def _int64_plan(descriptor: Any) -> _Plan:
    """The fields of ``descriptor``'s dicts to convert (empty: nothing to do)."""
    return _plan_for(descriptor, {}, set())


def _plan_for(descriptor: Any, plans: dict[str, _Plan], active: set[str]) -> _Plan:
    # plans: every plan built so far (recursive types share one object); active: the message
    # types being built up the stack - a reference to one of them is kept even though its plan
    # is still empty, since it may fill up later.
    name = descriptor.full_name
    if name in plans:
        return plans[name]
    plan: _Plan = []
    plans[name] = plan
    active.add(name)
    for field in descriptor.fields:
        msg = field.message_type
        is_map = msg is not None and msg.GetOptions().map_entry
        target = msg.fields_by_name["value"] if is_map else field
        sub = target.message_type
        many: _Kind
        if sub is not None and sub.full_name in _INT64_WRAPPERS:
            many = "int_values" if is_map else "ints" if field.is_repeated else "int"
            plan.append((field.name, many, []))
        elif sub is not None and not sub.full_name.startswith("google.protobuf."):
            sub_plan = _plan_for(sub, plans, active)
            if sub_plan or sub.full_name in active:
                many = "msg_values" if is_map else "msgs" if field.is_repeated else "msg"
                plan.append((field.name, many, sub_plan))
        elif sub is None and target.cpp_type in _INT64_CPP_TYPES:
            many = "int_values" if is_map else "ints" if field.is_repeated else "int"
            plan.append((field.name, many, []))
    active.discard(name)
    return plan


def _as_int(value: Any) -> Any:
    return int(value) if isinstance(value, str) else value


def _apply_int64_plan(d: dict[str, Any], plan: _Plan) -> None:
    for name, kind, sub in plan:
        value = d.get(name)
        if value is None:
            continue
        if kind == "int":
            d[name] = _as_int(value)
        elif kind == "ints":
            d[name] = [_as_int(v) for v in value]
        elif kind == "int_values":
            d[name] = {k: _as_int(v) for k, v in value.items()}
        elif not sub:
            continue
        elif kind == "msg":
            _apply_int64_plan(value, sub)
        elif kind == "msgs":
            for item in value:
                _apply_int64_plan(item, sub)
        else:
            for item in value.values():
                _apply_int64_plan(item, sub)


_JSON = json_codec()
_RAW = raw_codec()


def resolve_codec(spec: CodecLike) -> Codec:
    """Turn a :data:`CodecLike` into a :class:`Codec` (see the module docstring)."""
    if isinstance(spec, Codec):
        return spec
    if spec == "json":
        return _JSON
    if spec in ("raw", "bytes"):
        return _RAW
    if isinstance(spec, type) and issubclass(spec, Message):
        return protobuf_codec(spec)
    raise TypeError(
        f"unknown codec {spec!r}: use 'json', 'raw', a protobuf message class or a Codec"
    )
