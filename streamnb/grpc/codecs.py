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


def dict_message_codec(request_type: type[Message], response_type: type[Message]) -> Codec:
    """Dicts in, dicts out over protobuf messages (what reflection-based calls use).

    Requests: dicts of fields (``None`` = empty message) or messages; responses:
    ``json_format.MessageToDict`` with the proto field names (``payload_size``, not
    ``payloadSize``) and fields at their default value included. 64-bit integers come back as
    strings, as protobuf's JSON mapping prescribes.
    """
    from_string = response_type.FromString
    to_dict = json_format.MessageToDict
    encode_message = _message_encoder(request_type)

    def encode(obj: Any) -> bytes:
        return encode_message({} if obj is None else obj)

    def decode(data: bytes) -> Any:
        return to_dict(
            from_string(data),
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )

    return Codec(f"dict:{response_type.DESCRIPTOR.full_name}", encode, decode)


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
