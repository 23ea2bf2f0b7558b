"""The payload checksum: new exports name xxh3-128; artifacts exported with the
older sha256 checksum still verify; stored and deflated archives of the same
records hash alike (records are hashed in place or copied out)."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile

import pytest

from torchport import _native
from torchport.errors import BadArtifactError
from torchport.native import NativeModel

from hostile import build_zip, zip_records

MANIFEST = "extra/torchport/manifest.json"
SKIPPED = ("extra/torchport/manifest.json", "torchport/manifest.json", ".data/serialization_id")


def old_sha256(data: bytes) -> str:
    """The digest exports before xxh3-128 recorded, computed here independently
    (hashlib) as the oracle: sorted records but the manifest and the save id,
    each as name, a zero byte, its size as 8 little-endian bytes, its bytes."""
    records = {info.filename.split("/", 1)[1]: payload for info, payload in zip_records(data)}
    sha = hashlib.sha256()
    for name in sorted(records):
        if name in SKIPPED:
            continue
        sha.update(name.encode() + b"\0" + len(records[name]).to_bytes(8, "little") + records[name])
    return "sha256:" + sha.hexdigest()


def with_checksum(data: bytes, checksum: str) -> bytes:
    records = []
    for info, payload in zip_records(data):
        if info.filename.endswith(MANIFEST):
            manifest = json.loads(payload)
            manifest["checksum"] = checksum
            payload = json.dumps(manifest).encode()
        records.append((info.filename, payload))
    return build_zip(records)


def test_new_exports_record_xxh3(mlp_artifact):
    info = _native.inspect(str(mlp_artifact[1]))
    assert re.fullmatch(r"xxh3-128\+manifest:[0-9a-f]{32}", info.manifest.checksum), info.manifest.checksum
    assert info.checksum == info.manifest.checksum and info.checksum_ok and info.problem == ""


def test_the_checksum_covers_the_manifest(mlp_artifact, tmp_path):
    data = mlp_artifact[1].read_bytes()
    records = []
    for info, payload in zip_records(data):
        if info.filename.endswith(MANIFEST):
            manifest = json.loads(payload)
            manifest["inputs"][0]["name"] = "renamed"
            payload = json.dumps(manifest).encode()
        records.append((info.filename, payload))
    edited = tmp_path / "edited.pt"
    edited.write_bytes(build_zip(records))
    with pytest.raises(BadArtifactError, match=r"edited\.pt.*checksum mismatch"):
        NativeModel(edited)
    info = _native.inspect(str(edited))  # shown, but flagged
    assert not info.checksum_ok and "checksum mismatch" in info.problem


def test_sha256_artifacts_still_verify(mlp_artifact, tmp_path):
    data = mlp_artifact[1].read_bytes()
    old = tmp_path / "old.pt"
    old.write_bytes(with_checksum(data, old_sha256(data)))
    info = _native.inspect(str(old))
    assert info.checksum.startswith("sha256:") and info.checksum_ok
    assert NativeModel(old).selfcheck()["ok"]

    # The same file with one payload byte changed: the sha256 check still catches it.
    records = []
    for info_, payload in zip_records(old.read_bytes()):
        if info_.filename.endswith("/data.pkl"):
            payload = payload[:-2] + bytes([payload[-2] ^ 1]) + payload[-1:]
        records.append((info_.filename, payload))
    tampered = tmp_path / "tampered.pt"
    tampered.write_bytes(build_zip(records))
    with pytest.raises(BadArtifactError, match=r"checksum mismatch \(manifest sha256:"):
        NativeModel(tampered)


def test_stored_and_deflated_hash_alike(mlp_artifact):
    records = [(info.filename, payload) for info, payload in zip_records(mlp_artifact[1].read_bytes())]
    stored = _native.payload_checksum(build_zip(records))
    deflated = _native.payload_checksum(build_zip(records, zipfile.ZIP_DEFLATED))
    assert stored == deflated == _native.inspect(str(mlp_artifact[1])).manifest.checksum


def test_unknown_algorithm_is_refused(mlp_artifact, tmp_path):
    bad = tmp_path / "md5.pt"
    bad.write_bytes(with_checksum(mlp_artifact[1].read_bytes(), "md5:00"))
    with pytest.raises(BadArtifactError, match=r"checksum.*xxh3-128:<hex>.*sha256:<hex>.*md5:00"):
        NativeModel(bad)
