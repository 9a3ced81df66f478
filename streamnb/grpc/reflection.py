"""Calls to any server with reflection: dicts in, dicts out, no generated code (like grpcurl).

The client asks the server's reflection service (``grpc.reflection.v1alpha``, falling back to
``grpc.reflection.v1``) for the file descriptors that define a service, adds them - with their
dependencies - to a private ``DescriptorPool``, builds message classes with
``message_factory.GetMessageClass`` and converts with ``json_format``. Descriptors are fetched
once per service and cached on the client.

::

    async with GrpcClient(address) as client:
        print(await client.services())
        for m in await client.methods("streamnb.demo.v1.EventFeed"):
            print(m.name, m.shape, m.input_type, "->", m.output_type)
        print(await client.call("streamnb.demo.v1.EventFeed/Get", {"seq": 7}))

Response dicts use the proto field names and include fields left at their default value.
64-bit integers (``uint64 seq``) come back as Python ints, although protobuf's JSON mapping
makes them strings (``"7"``) - a JavaScript concern, not a notebook's; pass
``int64_as_str=True`` to ``call`` for the strict JSON mapping. Requests accept either form.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from grpc_reflection.v1alpha import reflection_pb2

from ._call import CallShape, DecodePolicy, Metadata, MetadataLike, method_path
from .codecs import dict_message_codec
from .errors import RpcError

__all__ = ["Caller", "MethodInfo", "Reflector"]

_PATHS = (
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",  # same messages on the wire
)


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """One method of a service, as the server's descriptors define it."""

    service: str
    name: str
    input_type: str
    output_type: str
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        """``/package.Service/Method`` - what to pass to the client's calls."""
        return f"/{self.service}/{self.name}"

    @property
    def shape(self) -> CallShape:
        """``unary``, ``server_stream``, ``client_stream`` or ``bidi``."""
        if self.client_streaming:
            return "bidi" if self.server_streaming else "client_stream"
        return "server_stream" if self.server_streaming else "unary"


class Caller(Protocol):
    """What a :class:`Reflector` needs of its client: the channel and the four call shapes
    (``GrpcClient`` is one; reflection does not import the client module)."""

    @property
    def channel(self) -> grpc.aio.Channel: ...

    async def unary(self, *args: Any, **kwargs: Any) -> Any: ...

    def server_stream(self, *args: Any, **kwargs: Any) -> Any: ...

    async def client_stream(self, *args: Any, **kwargs: Any) -> Any: ...

    def bidi(self, *args: Any, **kwargs: Any) -> Any: ...


class Reflector:
    """The reflection client behind ``GrpcClient.services/methods/call`` (one per client).

    ``timeout`` and ``metadata`` are the client's defaults, used for reflection queries.
    """

    def __init__(
        self, client: Caller, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._metadata = metadata
        self._pool = descriptor_pool.DescriptorPool()
        self._files: set[str] = set()
        self._lock = asyncio.Lock()
        self._path_index = 0
        #: Reflection round trips made so far (descriptors are cached: see tests).
        self.queries = 0

    async def _ask(
        self, requests: list[reflection_pb2.ServerReflectionRequest], deadline_s: float | None
    ) -> list[reflection_pb2.ServerReflectionResponse]:
        client = self._client
        t = self._timeout if deadline_s is None else deadline_s
        md = self._metadata
        while True:
            path = _PATHS[self._path_index]
            mc = client.channel.stream_stream(
                path,
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            self.queries += 1
            try:
                call = mc(iter(requests), timeout=t, metadata=md)
                return [r async for r in call]
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED and self._path_index + 1 < len(
                    _PATHS
                ):
                    self._path_index += 1
                    continue
                raise RpcError(path, exc.code(), exc.details()) from exc

    @staticmethod
    def _check(response: reflection_pb2.ServerReflectionResponse, what: str) -> None:
        if response.HasField("error_response"):
            err = response.error_response
            code = {c.value[0]: c for c in grpc.StatusCode}.get(err.error_code)
            raise RpcError(
                _PATHS[0], code, f"reflection could not resolve {what}: {err.error_message}"
            )

    async def services(self, *, deadline_s: float | None = None) -> list[str]:
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        (resp,) = await self._ask([req], deadline_s)
        self._check(resp, "the service list")
        return sorted(s.name for s in resp.list_services_response.service)

    async def _load(self, symbol: str, deadline_s: float | None) -> None:
        """Make sure ``symbol`` (a service or message) and its dependencies are in the pool."""
        async with self._lock:
            if self._known(symbol):
                return
            req = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
            (resp,) = await self._ask([req], deadline_s)
            self._check(resp, f"symbol {symbol!r}")
            await self._add_files(resp.file_descriptor_response.file_descriptor_proto, deadline_s)

    def _known(self, symbol: str) -> bool:
        for find in (self._pool.FindServiceByName, self._pool.FindMessageTypeByName):
            try:
                find(symbol)
                return True
            except KeyError:
                continue
        return False

    async def _add_files(self, serialized: Iterable[bytes], deadline_s: float | None) -> None:
        pending: dict[str, tuple[bytes, descriptor_pb2.FileDescriptorProto]] = {}
        for data in serialized:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(data)
            if fdp.name not in self._files:
                pending[fdp.name] = (data, fdp)
        while pending:
            missing = {
                dep
                for _, fdp in pending.values()
                for dep in fdp.dependency
                if dep not in self._files and dep not in pending
            }
            if missing:
                reqs = [
                    reflection_pb2.ServerReflectionRequest(file_by_filename=name)
                    for name in sorted(missing)
                ]
                for resp in await self._ask(reqs, deadline_s):
                    self._check(resp, f"files {sorted(missing)}")
                    for data in resp.file_descriptor_response.file_descriptor_proto:
                        fdp = descriptor_pb2.FileDescriptorProto.FromString(data)
                        if fdp.name not in self._files:
                            pending.setdefault(fdp.name, (data, fdp))
                continue
            ready = [
                name
                for name, (_, fdp) in pending.items()
                if all(dep in self._files for dep in fdp.dependency)
            ]
            if not ready:
                raise RpcError(
                    _PATHS[0],
                    None,
                    f"circular or unresolvable file dependencies: {sorted(pending)}",
                )
            for name in ready:
                data, _ = pending.pop(name)
                self._pool.AddSerializedFile(data)
                self._files.add(name)

    async def methods(self, service: str, *, deadline_s: float | None = None) -> list[MethodInfo]:
        await self._load(service, deadline_s)
        try:
            sd = self._pool.FindServiceByName(service)
        except KeyError:
            raise RpcError(_PATHS[0], None, f"{service!r} is not a service") from None
        return [
            MethodInfo(
                service=service,
                name=m.name,
                input_type=m.input_type.full_name,
                output_type=m.output_type.full_name,
                client_streaming=bool(m.client_streaming),
                server_streaming=bool(m.server_streaming),
            )
            for m in sd.methods
        ]

    async def method(self, method: str, *, deadline_s: float | None = None) -> MethodInfo:
        """The :class:`MethodInfo` of ``package.Service/Method`` (any spelling the client takes)."""
        service, _, name = method_path(method)[1:].partition("/")
        for info in await self.methods(service, deadline_s=deadline_s):
            if info.name == name:
                return info
        raise RpcError(f"/{service}/{name}", grpc.StatusCode.UNIMPLEMENTED, "no such method")

    def message_class(self, full_name: str) -> type[Message]:
        """The message class of ``full_name`` (its service must have been loaded)."""
        cls: type[Message] = message_factory.GetMessageClass(
            self._pool.FindMessageTypeByName(full_name)
        )
        return cls

    async def call(
        self,
        method: str,
        request: Any,
        *,
        deadline_s: float | None,
        metadata: MetadataLike | None,
        on_decode_error: DecodePolicy,
        int64_as_str: bool = False,
    ) -> Any:
        info = await self.method(method, deadline_s=deadline_s)
        timeout = deadline_s
        codec = dict_message_codec(
            self.message_class(info.input_type),
            self.message_class(info.output_type),
            int64_as_str=int64_as_str,
        )
        client = self._client
        shape = info.shape
        if shape == "unary":
            return await client.unary(
                info.path, request, codec=codec, timeout=timeout, metadata=metadata
            )
        if shape == "server_stream":
            return client.server_stream(
                info.path,
                request,
                codec=codec,
                timeout=timeout,
                metadata=metadata,
                on_decode_error=on_decode_error,
            )
        requests: Any = [] if request is None else request
        if isinstance(requests, Mapping | Message):
            requests = [requests]
        if shape == "client_stream":
            return await client.client_stream(
                info.path, requests, codec=codec, timeout=timeout, metadata=metadata
            )
        return client.bidi(
            info.path,
            requests,
            codec=codec,
            timeout=timeout,
            metadata=metadata,
            on_decode_error=on_decode_error,
        )
