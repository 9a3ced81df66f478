"""Codecs, metadata redaction, method paths and the error types (no server needed)."""

from __future__ import annotations

import pickle

import grpc
import pytest

import streamnb
from streamnb.errors import StreamnbError
from streamnb.grpc import (
    Codec,
    DecodeError,
    EncodeError,
    RpcError,
    json_codec,
    protobuf_codec,
    raw_codec,
    redact_metadata,
    resolve_codec,
)
from streamnb.grpc._generated import streamnb_demo_pb2 as pb
from streamnb.grpc.client import _method_path
from streamnb.grpc.codecs import dict_message_codec


def test_import_streamnb_does_not_import_grpc() -> None:
    import subprocess
    import sys

    code = "import sys, streamnb; print('grpc' in sys.modules, 'google.protobuf' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert streamnb.Stream is not None


def test_json_codec_round_trip_and_compact() -> None:
    c = json_codec()
    data = c.encode({"seq": 1, "text": "é"})
    assert data == '{"seq":1,"text":"é"}'.encode()
    assert c.decode(data) == {"seq": 1, "text": "é"}


def test_raw_codec() -> None:
    c = raw_codec()
    assert c.encode(b"ab") == b"ab"
    assert c.encode(bytearray(b"cd")) == b"cd"
    assert c.encode(memoryview(b"ef")) == b"ef"
    assert c.decode(b"\x00\x01") == b"\x00\x01"
    with pytest.raises(TypeError, match="raw codec sends bytes"):
        c.encode("text")


def test_protobuf_codec_messages_and_dicts() -> None:
    c = protobuf_codec(pb.Event, pb.GetRequest)
    assert pb.GetRequest.FromString(c.encode(pb.GetRequest(seq=4))).seq == 4
    assert pb.GetRequest.FromString(c.encode({"seq": 5})).seq == 5
    assert c.decode(pb.Event(seq=9).SerializeToString()).seq == 9
    bare = protobuf_codec(pb.Event)
    with pytest.raises(TypeError, match="protobuf message"):
        bare.encode({"seq": 1})


def test_dict_message_codec_includes_defaults_and_proto_names() -> None:
    c = dict_message_codec(pb.SubscribeRequest, pb.Event)
    assert pb.SubscribeRequest.FromString(c.encode(None)) == pb.SubscribeRequest()
    assert pb.SubscribeRequest.FromString(c.encode({"payload_size": 3})).payload_size == 3
    d = c.decode(pb.Event(kind="k").SerializeToString())
    assert d == {"seq": "0", "timestamp": 0.0, "kind": "k", "payload": ""}


def test_resolve_codec() -> None:
    assert resolve_codec("json").name == "json"
    assert resolve_codec("raw").name == resolve_codec("bytes").name == "raw"
    assert resolve_codec(pb.Event).name == "protobuf:streamnb.demo.v1.Event"
    custom = Codec("upper", str.encode, lambda b: b.decode().upper())
    assert resolve_codec(custom) is custom
    with pytest.raises(TypeError, match="unknown codec"):
        resolve_codec("xml")  # type: ignore[arg-type]


def test_redact_metadata() -> None:
    md: list[tuple[str, str | bytes]] = [
        ("authorization", "Bearer secret-1"),
        ("x-api-key", "secret-2"),
        ("x-auth-token", "secret-3"),
        ("cookie", "secret-4"),
        ("x-client-secret", "secret-5"),
        ("x-request-id", "42"),
        ("trace-bin", b"\x00\x01\x02"),
    ]
    red = redact_metadata(md)
    assert not any(f"secret-{i}" in repr(red) for i in range(1, 6))
    assert ("x-request-id", "42") in red
    assert ("trace-bin", "<3 bytes>") in red
    assert [k for k, _ in red] == [k for k, _ in md]


def test_method_path_normalisation() -> None:
    assert _method_path("pkg.Svc/M") == "/pkg.Svc/M"
    assert _method_path("/pkg.Svc/M") == "/pkg.Svc/M"
    assert _method_path("pkg.Svc.M") == "/pkg.Svc/M"
    for bad in ("", "M", "/pkg.Svc/", "a/b/c"):
        with pytest.raises(ValueError, match=r"package\.Service/Method"):
            _method_path(bad)


def test_rpc_error_fields_retryable_and_pickle() -> None:
    e = RpcError("/p.S/M", grpc.StatusCode.UNAVAILABLE, "down", received=3, sent=1)
    assert isinstance(e, StreamnbError)
    assert e.retryable and streamnb.default_retryable(e)
    assert "/p.S/M" in str(e) and "UNAVAILABLE" in str(e) and "3 message(s)" in str(e)
    for code in ("INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED", "DEADLINE_EXCEEDED"):
        assert not RpcError("/p.S/M", grpc.StatusCode[code], "x").retryable
    assert RpcError("/p.S/M", grpc.StatusCode.ABORTED, "x").retryable
    back = pickle.loads(pickle.dumps(e))
    assert (back.method, back.code, back.details, back.received) == ("/p.S/M", e.code, "down", 3)


def test_decode_and_encode_errors() -> None:
    d = DecodeError("/p.S/M", 7, b"\xff" * 40, "bad")
    assert isinstance(d, RpcError) and not d.retryable
    assert d.index == 7 and "#7" in str(d) and "/p.S/M" in str(d) and "..." in str(d)
    assert pickle.loads(pickle.dumps(d)).index == 7
    enc = EncodeError("/p.S/M", 2, "TypeError: no")
    assert isinstance(enc, StreamnbError) and "#2" in str(enc)
    assert pickle.loads(pickle.dumps(enc)).index == 2
