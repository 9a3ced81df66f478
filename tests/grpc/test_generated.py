"""The committed protobuf/gRPC modules match what grpcio-tools generates from the .proto files."""

from __future__ import annotations

from streamnb.grpc import _regen


def test_generated_modules_are_fresh() -> None:
    stale = _regen.stale_files()
    assert stale == [], (
        f"stale generated modules {stale}: run `python -m streamnb.grpc._regen` and commit"
    )


def test_generated_package_imports_relative_modules() -> None:
    files = _regen.generate()
    assert {"__init__.py", "streamnb_demo_pb2.py", "streamnb_demo_pb2_grpc.py"} <= set(files)
    grpc_module = files["streamnb_demo_pb2_grpc.py"].decode()
    assert "from . import streamnb_demo_pb2 as" in grpc_module
    assert "\nimport streamnb_demo_pb2" not in grpc_module
    from streamnb.grpc._generated import streamnb_demo_pb2, streamnb_demo_pb2_grpc

    assert streamnb_demo_pb2.Event(seq=1).seq == 1
    assert hasattr(streamnb_demo_pb2_grpc, "EventFeedStub")


def test_stale_files_notices_a_change(tmp_path: object) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    _regen.write(directory)
    assert _regen.stale_files(directory) == []
    target = directory / "streamnb_demo_pb2.py"
    target.write_text(target.read_text() + "\n# edited\n")
    (directory / "leftover_pb2.py").write_text("")
    assert _regen.stale_files(directory) == ["leftover_pb2.py", "streamnb_demo_pb2.py"]
