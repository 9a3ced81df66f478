"""Codecs, metadata redaction, method paths and the error types (no server needed)."""

from __future__ import annotations

import pickle

import grpc
import pytest
from google.protobuf.message import Message

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
from streamnb.grpc._call import method_path
from streamnb.grpc._generated import streamnb_demo_pb2 as pb
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
    assert d == {"seq": 0, "timestamp": 0.0, "kind": "k", "payload": ""}
    strict = dict_message_codec(pb.SubscribeRequest, pb.Event, int64_as_str=True)
    assert strict.decode(pb.Event(seq=5).SerializeToString())["seq"] == "5"


def _int64_zoo() -> tuple[type[Message], type[Message]]:
    """Message classes (built from a descriptor, as reflection does) with every 64-bit shape."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(
        name="zoo.proto",
        package="zoo",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    inner = fd.message_type.add(name="Inner")
    inner.field.add(name="big", number=1, type=F.TYPE_UINT64, label=F.LABEL_OPTIONAL)
    inner.field.add(name="small", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    inner.field.add(
        name="child", number=3, type=F.TYPE_MESSAGE, type_name=".zoo.Inner", label=F.LABEL_OPTIONAL
    )  # recursive
    zoo = fd.message_type.add(name="Zoo")
    scalars = [
        ("i64", F.TYPE_INT64),
        ("u64", F.TYPE_UINT64),
        ("s64", F.TYPE_SINT64),
        ("f64", F.TYPE_FIXED64),
        ("sf64", F.TYPE_SFIXED64),
        ("i32", F.TYPE_INT32),
        ("name", F.TYPE_STRING),
        ("ratio", F.TYPE_DOUBLE),
    ]
    for number, (name, type_) in enumerate(scalars, start=1):
        zoo.field.add(name=name, number=number, type=type_, label=F.LABEL_OPTIONAL)
    zoo.field.add(name="many", number=20, type=F.TYPE_UINT64, label=F.LABEL_REPEATED)
    zoo.field.add(
        name="inner", number=21, type=F.TYPE_MESSAGE, type_name=".zoo.Inner", label=F.LABEL_OPTIONAL
    )
    zoo.field.add(
        name="inners",
        number=22,
        type=F.TYPE_MESSAGE,
        type_name=".zoo.Inner",
        label=F.LABEL_REPEATED,
    )
    zoo.field.add(
        name="wrapped",
        number=23,
        type=F.TYPE_MESSAGE,
        type_name=".google.protobuf.Int64Value",
        label=F.LABEL_OPTIONAL,
    )
    for number, (name, value_type, value_name) in enumerate(
        [("counts", F.TYPE_INT64, ""), ("by_name", F.TYPE_MESSAGE, ".zoo.Inner")], start=30
    ):
        entry = zoo.nested_type.add(name=name.title().replace("_", "") + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        value = entry.field.add(name="value", number=2, type=value_type, label=F.LABEL_OPTIONAL)
        if value_name:
            value.type_name = value_name
        zoo.field.add(
            name=name,
            number=number,
            type=F.TYPE_MESSAGE,
            label=F.LABEL_REPEATED,
            type_name=f".zoo.Zoo.{entry.name}",
        )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fd)
    get = message_factory.GetMessageClass
    return get(pool.FindMessageTypeByName("zoo.Zoo")), get(pool.FindMessageTypeByName("zoo.Inner"))


def test_dict_codec_gives_ints_for_every_64_bit_field_and_accepts_them_back() -> None:
    zoo_cls, _ = _int64_zoo()
    c = dict_message_codec(zoo_cls, zoo_cls)
    big = 2**64 - 1  # beyond a double's 53 bits: exact as a Python int
    sent = {
        "i64": -(2**63),
        "u64": big,
        "s64": -5,
        "f64": 2**53 + 1,
        "sf64": -7,
        "i32": 3,
        "name": "n",
        "ratio": 0.5,
        "many": [1, big],
        "inner": {"big": big, "small": 1, "child": {"big": 9, "small": 2}},
        "inners": [{"big": 1, "small": 0}, {"big": 2, "small": 0}],
        "wrapped": 2**40,
        "counts": {"a": 1, "b": -(2**62)},
        "by_name": {"x": {"big": 3, "small": 0}},
    }
    got = c.decode(c.encode(sent))  # ints go out ...
    for key in ("i64", "u64", "s64", "f64", "sf64", "i32", "many", "wrapped", "counts"):
        assert got[key] == sent[key], key  # ... and come back as ints, exactly
    assert got["inner"] == {"big": big, "small": 1, "child": {"big": 9, "small": 2}}
    assert [i["big"] for i in got["inners"]] == [1, 2]
    assert got["by_name"]["x"]["big"] == 3
    assert got["name"] == "n" and got["ratio"] == 0.5
    assert c.decode(c.encode(got)) == got  # the dicts it returns are valid requests
    as_strings = {**sent, "u64": str(big), "many": ["1", str(big)]}
    assert c.decode(c.encode(as_strings))["u64"] == big  # strings are still accepted
    strict = dict_message_codec(zoo_cls, zoo_cls, int64_as_str=True).decode(c.encode(sent))
    assert strict["u64"] == str(big) and strict["inner"]["big"] == str(big)
    assert strict["counts"] == {"a": "1", "b": str(-(2**62))} and strict["wrapped"] == str(2**40)


def test_dict_codec_int_conversion_leaves_defaults_and_absent_fields_alone() -> None:
    zoo_cls, inner_cls = _int64_zoo()
    c = dict_message_codec(inner_cls, zoo_cls)
    empty = c.decode(zoo_cls().SerializeToString())
    assert empty["u64"] == 0 and empty["many"] == [] and empty["counts"] == {}
    assert "inner" not in empty and "wrapped" not in empty  # unset messages stay absent


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
    assert method_path("pkg.Svc/M") == "/pkg.Svc/M"
    assert method_path("/pkg.Svc/M") == "/pkg.Svc/M"
    assert method_path("pkg.Svc.M") == "/pkg.Svc/M"
    for bad in ("", "M", "/pkg.Svc/", "a/b/c"):
        with pytest.raises(ValueError, match=r"package\.Service/Method"):
            method_path(bad)


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
