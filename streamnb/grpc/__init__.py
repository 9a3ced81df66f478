"""gRPC streaming for notebooks: every call shape as awaitables and Streams (extra ``[grpc]``).

::

    from streamnb.grpc import GrpcClient

    async with GrpcClient("127.0.0.1:50051") as client:
        feed = client.server_stream("/streamnb.demo.v1.Json/Subscribe", {"count": 100})
        print(await feed.monitor("events").count())
        print(await client.services())            # any server with reflection

See :mod:`streamnb.grpc.client` (calls), :mod:`streamnb.grpc.codecs` (JSON, protobuf, raw),
:mod:`streamnb.grpc.reflection` (dict calls from the server's descriptors) and
:mod:`streamnb.grpc.errors`. ``python -m streamnb.demo`` starts a server to try it on.
"""

from __future__ import annotations

from streamnb.metrics import CallSnapshot

from .client import (
    CallShape,
    GrpcClient,
    MetadataLike,
    RpcStream,
    call_snapshot,
    redact_metadata,
)
from .codecs import (
    Codec,
    CodecLike,
    dict_message_codec,
    json_codec,
    protobuf_codec,
    raw_codec,
    resolve_codec,
)
from .errors import RETRYABLE_CODES, DecodeError, EncodeError, RpcError
from .reflection import MethodInfo

__all__ = [
    "RETRYABLE_CODES",
    "CallShape",
    "CallSnapshot",
    "Codec",
    "CodecLike",
    "DecodeError",
    "EncodeError",
    "GrpcClient",
    "MetadataLike",
    "MethodInfo",
    "RpcError",
    "RpcStream",
    "call_snapshot",
    "dict_message_codec",
    "json_codec",
    "protobuf_codec",
    "raw_codec",
    "redact_metadata",
    "resolve_codec",
]
