"""The committed message classes of the Pub/Sub API are what protoc makes of the committed
proto: generated again here, byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

from grpc_tools import protoc

from revops.ingest.stream import proto
from revops.ingest.stream.pubsub import method_path

PROTO_DIR = Path(proto.__file__).parent
SRC = PROTO_DIR.parents[3]  # services/ingest/src
RELATIVE = "revops/ingest/stream/proto/pubsub_api.proto"


def test_generated_message_classes_match_the_proto(tmp_path: Path) -> None:
    target = tmp_path / RELATIVE
    target.parent.mkdir(parents=True)
    shutil.copy(PROTO_DIR / "pubsub_api.proto", target)
    status = protoc.main(
        ["protoc", f"-I{tmp_path}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", RELATIVE]
    )
    assert status == 0
    for name in ("pubsub_api_pb2.py", "pubsub_api_pb2.pyi"):
        fresh = (target.parent / name).read_text()
        assert fresh == (PROTO_DIR / name).read_text(), (
            f"{name} is stale: regenerate it (see {PROTO_DIR / 'README.md'})"
        )


def test_the_proto_is_kept_beside_its_source_and_licence() -> None:
    readme = (PROTO_DIR / "README.md").read_text()
    assert "forcedotcom/pub-sub-api" in readme and "CC0 1.0" in readme
    assert (SRC / RELATIVE).is_file()


def test_method_paths_come_from_the_proto() -> None:
    assert method_path("Subscribe") == "/eventbus.v1.PubSub/Subscribe"
    assert method_path("GetSchema") == "/eventbus.v1.PubSub/GetSchema"
