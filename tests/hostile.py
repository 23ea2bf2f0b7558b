"""Hostile and broken files, built byte by byte: the one table of adversarial
cases that tests/test_adversarial.py runs through the binding, torchport-run
and the torchport command, and that fuzz_worker.py mutates further.

Every case builds its files in a folder and says which error kind all three
entry points must report (the names of torchport::ErrorKind).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import socket
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from torchport import _native

# --- pickles, by opcode -------------------------------------------------------


def deep_list_pickle(depth: int) -> bytes:
    """[[[...]]] nested `depth` deep, as protocol 2 opcodes (Python's own
    pickler would recurse too deeply to write it)."""
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def deep_dict_pickle(depth: int) -> bytes:
    return b"\x80\x02" + b"}X\x01\x00\x00\x00k" * depth + b"}" + b"s" * depth + b"."


def exploit_pickle(marker: Path) -> bytes:
    """A pickle that would run a shell command if anything unpickled it with pickle.load."""

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps(Exploit(), protocol=2)


def torch_save_with_pickle(data_pkl: bytes, name: str = "archive") -> bytes:
    """A torch.save-style zip whose data.pkl is `data_pkl`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}/data.pkl", data_pkl)
        z.writestr(f"{name}/byteorder", "little")
        z.writestr(f"{name}/version", "3\n")
    return buf.getvalue()


def torch_save_bytes(obj, **kwargs) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


# --- zips, record by record ---------------------------------------------------


def zip_records(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(info, z.read(info)) for info in z.infolist()]


def build_zip(records: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, payload in records:
            z.writestr(name, payload)
    return buf.getvalue()


def rewrite(artifact: bytes, edit: Callable[[str, bytes], Optional[bytes]], *, extra: list[tuple[str, bytes]] = (),
            fix_checksum: bool = True, manifest_edit: Optional[Callable[[dict], dict]] = None) -> bytes:
    """The artifact with each record passed through `edit(name, bytes)` (None
    drops it), `extra` records appended, the manifest edited, and the payload
    checksum recomputed so that the edit is judged on its own."""
    records = []
    for info, payload in zip_records(artifact):
        new = edit(info.filename, payload)
        if new is not None:
            records.append((info.filename, new))
    records += list(extra)
    out = build_zip(records)
    manifest_name = next((n for n, _ in records if n.endswith("extra/torchport/manifest.json")), None)
    if manifest_name is None or not (fix_checksum or manifest_edit):
        return out
    manifest = json.loads(dict(records)[manifest_name])
    if fix_checksum:
        manifest["checksum"] = _native.payload_checksum(out)
    if manifest_edit:
        manifest = manifest_edit(manifest)
    text = manifest if isinstance(manifest, (bytes, str)) else json.dumps(manifest)
    return build_zip([(n, (text.encode() if isinstance(text, str) else text) if n == manifest_name else p)
                      for n, p in records])


def record_name(artifact: bytes, suffix: str) -> str:
    return next(info.filename for info, _ in zip_records(artifact) if info.filename.endswith(suffix))


def with_manifest(artifact: bytes, text) -> bytes:
    """The artifact with its manifest record replaced by `text` (bytes or str), nothing else changed."""
    payload = text.encode() if isinstance(text, str) else text
    return rewrite(artifact, lambda n, p: payload if n.endswith("extra/torchport/manifest.json") else p,
                   fix_checksum=False)


def edit_manifest(artifact: bytes, change: Callable[[dict], object]) -> bytes:
    def edit(name, payload):
        if not name.endswith("extra/torchport/manifest.json"):
            return payload
        m = json.loads(payload)
        out = change(m)
        m = m if out is None else out
        return m if isinstance(m, bytes) else (m if isinstance(m, str) else json.dumps(m)).encode()

    edited = rewrite(artifact, edit, fix_checksum=False)
    # The checksum covers the manifest: resealed where the edit still parses and
    # left the checksum field alone, so that the edit is judged on its own
    # rather than as a mismatch.
    def checksum_of(data):
        try:
            return json.loads(dict((i.filename, p) for i, p in zip_records(data))[
                record_name(data, "extra/torchport/manifest.json")]).get("checksum")
        except Exception:  # noqa: BLE001 - not JSON, or not an object
            return None
    if checksum_of(edited) is None or checksum_of(edited) != checksum_of(artifact):
        return edited
    try:
        return rewrite(edited, lambda n, p: p)
    except Exception:  # noqa: BLE001 - an edit the runtime cannot even hash stays as it is
        return edited


def with_record(artifact: bytes, entry, payload: bytes = b"x") -> bytes:
    """The artifact with one more record, `entry` a name or a ZipInfo (its name
    formatted with {folder}, the archive's top folder), stored as given."""
    records = zip_records(artifact)
    folder = records[0][0].filename.split("/", 1)[0]
    if isinstance(entry, str):
        entry = zipfile.ZipInfo(entry.format(folder=folder))
    else:
        entry.filename = entry.filename.format(folder=folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for info, data in records:
            z.writestr(zipfile.ZipInfo(info.filename), data)
        z.writestr(entry, payload)
    return buf.getvalue()


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode is the external attributes' upper half
    info.external_attr = 0o120777 << 16
    return info


def local_name_differs(artifact: bytes) -> bytes:
    """The last record's local header names a climbing path; its directory entry does not."""
    info = zip_records(artifact)[-1][0]
    out = bytearray(artifact)
    start = info.header_offset + 30
    n = len(info.filename.encode())
    out[start:start + n] = (b"../" * n)[:n]
    return bytes(out)


def replace_record(artifact: bytes, suffix: str, payload: bytes) -> bytes:
    return rewrite(artifact, lambda n, p: payload if n.endswith(suffix) else p)


def central_directory(data: bytes) -> list[int]:
    """Offsets of the central directory headers, found from the end record (a
    record's payload, such as the zip inside golden.pt, may hold the same signatures)."""
    eocd = data.rindex(b"PK\x05\x06")
    count = int.from_bytes(data[eocd + 10:eocd + 12], "little")
    pos = int.from_bytes(data[eocd + 16:eocd + 20], "little")
    offsets = []
    for _ in range(count):
        offsets.append(pos)
        n, e, c = (int.from_bytes(data[pos + o:pos + o + 2], "little") for o in (28, 30, 32))
        pos += 46 + n + e + c
    return offsets


def patch_central_directory(data: bytes, field_offset: int, size: int, value: int, entry: int = 0) -> bytes:
    """Sets a field of the `entry`-th central directory header (offset from the header's start)."""
    out = bytearray(data)
    pos = central_directory(data)[entry]
    out[pos + field_offset:pos + field_offset + size] = value.to_bytes(size, "little")
    return bytes(out)


def patch_eocd(data: bytes, field_offset: int, size: int, value: int) -> bytes:
    out = bytearray(data)
    pos = out.rindex(b"PK\x05\x06")
    out[pos + field_offset:pos + field_offset + size] = value.to_bytes(size, "little")
    return bytes(out)


def zip_bomb_record(name: str) -> bytes:
    """A zip holding one small deflated record that declares 2 GiB inflated."""
    data = build_zip([(name, b"\0" * 4096)], zipfile.ZIP_DEFLATED)
    data = patch_central_directory(data, 24, 4, 2**31)
    out = bytearray(data)
    out[22:26] = (2**31).to_bytes(4, "little")  # the local header says the same
    return bytes(out)


# --- the table ----------------------------------------------------------------


@dataclass
class Case:
    """One adversarial case. `build(folder, good)` writes what it needs and
    returns the overrides of the good call: artifact, input, output, threads,
    device, atol, rtol. `kind` is the error kind every entry point reports."""

    name: str
    target: str  # "artifact", "input", "option", "output"
    kind: str
    build: Callable[[Path, "Good"], dict]
    message: str = ""  # a phrase every entry point's message holds
    marker: bool = False  # the case tries to run code: the marker file must not appear


@dataclass
class Good:
    """A valid artifact (input 'x' [batch, 4] float32, output 'y') and a valid input file."""

    artifact: Path
    input: Path
    bytes: bytes = field(repr=False, default=b"")


def pte_with_tail(manifest: bytes = b"", version: int = 1, sizes: Optional[tuple[int, int, int]] = None) -> bytes:
    """A .pte-looking program (ExecuTorch's identifier, then junk) with torchport's
    tail after it (docs/artifact.md): the manifest, no golden file, the footer."""
    program = b"\x1c\0\0\0ET12" + bytes(range(256)) * 4
    p, m, g = sizes or (len(program), len(manifest), 0)
    return program + manifest + b"TPORTPTE" + struct.pack("<IIQQQ", version, 0, p, m, g)


def _file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _art(data_fn, message: str = "", kind: str = "bad_artifact", marker: bool = False):
    def build(folder: Path, good: Good) -> dict:
        return {"artifact": _file(folder, "hostile.pt", data_fn(good.bytes, folder))}

    return build, message, kind, marker


def _inp(data_fn):
    def build(folder: Path, good: Good) -> dict:
        return {"input": _file(folder, "hostile_input.pt", data_fn(folder))}

    return build


def _special(kind_of_file: str, target: str):
    def build(folder: Path, good: Good) -> dict:
        path = folder / f"special_{kind_of_file}"
        if kind_of_file == "fifo":
            os.mkfifo(path)
        elif kind_of_file == "socket":
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(path))
            s.close()
        elif kind_of_file == "directory":
            path.mkdir()
        elif kind_of_file == "missing":
            pass
        elif kind_of_file == "dangling":
            path.symlink_to(folder / "nowhere")
        elif kind_of_file == "loop":
            path.symlink_to(path)
        else:
            path = Path(kind_of_file)  # /dev/zero, /dev/null
        return {target: path}

    return build


def _golden_edit(payload_fn):
    return lambda b, folder: rewrite(b, lambda n, p: payload_fn(folder) if n.endswith("extra/torchport/golden.pt") else p)


def _data_pkl(payload: bytes):
    return lambda b, folder: replace_record(b, "/data.pkl", payload)


def _code(payload_fn):
    def make(b, folder):
        name = next(info.filename for info, _ in zip_records(b) if "/code/" in info.filename and info.filename.endswith(".py"))
        return replace_record(b, name, payload_fn())
    return make


def _cases() -> list[Case]:
    c: list[Case] = []

    def art(name, data_fn, message="", kind="bad_artifact", marker=False):
        build, message, kind, marker = _art(data_fn, message, kind, marker)
        c.append(Case(name, "artifact", kind, build, message, marker))

    # Not a file, or nothing there.
    for what, kind, message in [
        ("missing", "not_found", "does not exist"), ("dangling", "not_found", "does not exist"),
        ("directory", "bad_artifact", "a directory"), ("fifo", "bad_artifact", "FIFO"),
        ("/dev/zero", "bad_artifact", "character device"), ("/dev/null", "bad_artifact", "character device"),
        ("socket", "bad_artifact", "socket"), ("loop", "bad_artifact", "symbolic links"),
    ]:
        c.append(Case(f"artifact is {what}", "artifact", kind, _special(what, "artifact"), message))
    # Not a zip, or a broken one.
    art("empty file", lambda b, f: b"", "is empty")
    art("random bytes", lambda b, f: os.urandom(4096), "not a loadable TorchScript archive")
    art("text", lambda b, f: b"def forward(x): return x\n" * 20, "not a loadable TorchScript archive")
    art("plain pickle", lambda b, f: pickle.dumps({"weights": [1.0, 2.0]}), "not a loadable TorchScript archive")
    art("legacy torch.save", lambda b, f: torch_save_bytes(torch.ones(3), _use_new_zipfile_serialization=False),
        "not a loadable TorchScript archive")
    art("a zip of something else", lambda b, f: build_zip([("notes/readme.txt", b"hello")]))
    art("an empty zip", lambda b, f: build_zip([]))
    art("truncated to half", lambda b, f: b[: len(b) // 2], "not a loadable TorchScript archive")
    art("truncated by one byte", lambda b, f: b[:-1], "not a loadable TorchScript archive")
    art("truncated to 10 bytes", lambda b, f: b[:10], "too short")
    art("200,000 records declared", lambda b, f: patch_eocd(patch_eocd(b, 10, 2, 0xFFFF - 1), 8, 2, 0xFFFF - 1),
        "not a loadable TorchScript archive")
    art("directory offset past the end", lambda b, f: patch_eocd(b, 16, 4, len(b) + 100), "outside the file")
    art("record size past the end", lambda b, f: patch_central_directory(
        patch_central_directory(b, 20, 4, 2**31), 24, 4, 2**31), "lies outside the file")
    art("zip bomb record", lambda b, f: _append_bomb(b), "inflates to")
    art("record name twice", lambda b, f: _duplicate_manifest(b), "appears twice")
    art("encrypted record", lambda b, f: patch_central_directory(b, 8, 2, 1), "encrypted")
    art("unknown compression method", lambda b, f: patch_central_directory(b, 10, 2, 12), "compression method")
    art("record name of 5000 bytes", lambda b, f: build_zip([("a" * 5000, b"x")]), "name of 5000 bytes")
    # Zip slip: record names an extractor would follow out of the archive's folder.
    art("record climbing out with ..", lambda b, f: with_record(b, "{folder}/extra/" + "../" * 12 + "tmp/evil"),
        "climbs out of its folder")
    art("record with an absolute name", lambda b, f: with_record(b, "/tmp/evil"), "is an absolute path")
    art("record with a backslash path", lambda b, f: with_record(b, "{folder}\\..\\..\\evil"), "backslash")
    art("record with a drive letter", lambda b, f: with_record(b, "C:/evil"), "drive letter")
    art("record with a . component", lambda b, f: with_record(b, "{folder}/./extra/x"), "'.' component")
    art("record with an empty component", lambda b, f: with_record(b, "{folder}//x"), "empty path component")
    art("record with a control byte", lambda b, f: with_record(b, "{folder}/x\x1b[2J"), "control character")
    art("record that is a symbolic link", lambda b, f: with_record(b, symlink_entry("{folder}/extra/link"), b"/etc"),
        "symbolic link")
    art("local header name differs", lambda b, f: local_name_differs(b), "another name in its local header")
    art("manifest edited after export", lambda b, f: rewrite(
        b, lambda n, p: p, fix_checksum=False, manifest_edit=lambda m: {**m, "name": "someone else"}),
        "checksum mismatch")
    # ExecuTorch programs (.pte, told by "ET" and two digits at byte 4) and torchport's tail after them.
    art("ExecuTorch magic, then random bytes", lambda b, f: b"\x1c\0\0\0ET12" + os.urandom(4096),
        "bare ExecuTorch program without torchport's manifest")
    art("ExecuTorch tail sizes that overflow", lambda b, f: pte_with_tail(sizes=(2**63, 2**63, 48)), "do not add up")
    art("ExecuTorch tail of version 99", lambda b, f: pte_with_tail(version=99), "tail version 99")
    art("ExecuTorch tail with a manifest not JSON", lambda b, f: pte_with_tail(manifest=b"{schema: 1,"), "not valid JSON")
    # The manifest.
    art("manifest not JSON", lambda b, f: with_manifest(b, "{schema: 1,"), "not valid JSON")
    art("manifest NaN in metadata", lambda b, f: edit_manifest(b, lambda m: json.dumps(m)[:-1] + ', "x": NaN}'), "NaN")
    art("manifest Infinity", lambda b, f: edit_manifest(b, lambda m: json.dumps(m)[:-1] + ', "x": -Infinity}'), "NaN or Infinity")
    art("manifest nested 100 deep", lambda b, f: edit_manifest(
        b, lambda m: json.dumps(m)[:-1] + ', "metadata": ' + "[" * 100 + "]" * 100 + "}"), "levels deep")
    art("manifest nested 100,000 deep", lambda b, f: edit_manifest(
        b, lambda m: json.dumps(m)[:-1] + ', "deep": ' + "[" * 100000 + "]" * 100000 + "}"), "levels deep")
    art("manifest of 17 MiB", lambda b, f: edit_manifest(b, lambda m: {**m, "metadata": {"pad": "x" * (17 << 20)}}),
        "more than the limit")
    art("manifest schema 0", lambda b, f: edit_manifest(b, lambda m: {**m, "schema": 0}), "positive integer")
    art("manifest schema 2^32 + 1", lambda b, f: edit_manifest(b, lambda m: {**m, "schema": 2**32 + 1}), "newer than")
    art("manifest schema 2^64", lambda b, f: edit_manifest(b, lambda m: {**m, "schema": 2**64}), "schema")
    art("manifest schema as text", lambda b, f: edit_manifest(b, lambda m: {**m, "schema": "1"}), "positive integer")
    art("manifest schema 4", lambda b, f: edit_manifest(b, lambda m: {**m, "schema": 4}), "newer than")
    art("manifest list per batch element in schema 2", lambda b, f: edit_manifest(
        b, lambda m: {**m, "schema": 2, "structure": {"type": "list", "per": "batch", "item": 0}}), "needs schema 3")
    art("manifest nested lists per batch element", lambda b, f: edit_manifest(
        b, lambda m: {**m, "schema": 3, "structure": {"type": "list", "per": "batch",
                                                      "item": {"type": "list", "per": "batch", "item": 0}}}),
        "nests inside another")
    art("manifest structure leaf out of range", lambda b, f: edit_manifest(b, lambda m: {**m, "structure": 7}),
        "not an output index")
    art("manifest structure repeats an output", lambda b, f: edit_manifest(
        b, lambda m: {**m, "structure": {"type": "tuple", "items": [0, 0]}}), "appears twice")
    art("manifest structure of an unknown type", lambda b, f: edit_manifest(
        b, lambda m: {**m, "structure": {"type": "set", "items": [0]}}), "'type' must be")
    art("manifest dims bound of an unknown dim", lambda b, f: edit_manifest(
        b, lambda m: {**m, "dims": {"nope": {"min": 1, "max": 2}}}), "names no dynamic dimension")
    art("manifest dims min above max", lambda b, f: edit_manifest(
        b, lambda m: {**m, "dims": {"batch": {"min": 5, "max": 2}}}), "above max")
    art("manifest constant that is a list", lambda b, f: edit_manifest(
        b, lambda m: {**m, "constants": {"k": [1]}}), "must be an int, float, bool, str or null")
    art("manifest dtype qint8", lambda b, f: edit_manifest(b, lambda m: _spec(m, "dtype", "qint8")), "not supported")
    art("manifest dtype float128", lambda b, f: edit_manifest(b, lambda m: _spec(m, "dtype", "float128")), "supported:")
    art("manifest dtype null", lambda b, f: edit_manifest(b, lambda m: _spec(m, "dtype", None)), "must be a string")
    art("manifest without inputs", lambda b, f: edit_manifest(b, lambda m: {**m, "inputs": []}), "'inputs' is empty")
    art("manifest dim 2^64", lambda b, f: edit_manifest(b, lambda m: _spec(m, "shape", ["batch", 2**64])), "shape entries")
    art("manifest dim 2^63 - 1", lambda b, f: edit_manifest(b, lambda m: _spec(m, "shape", ["batch", 2**63 - 1])), "shape entries")
    art("manifest dim -5", lambda b, f: edit_manifest(b, lambda m: _spec(m, "shape", ["batch", -5])), "shape entries")
    art("manifest dim 3.5", lambda b, f: edit_manifest(b, lambda m: _spec(m, "shape", ["batch", 3.5])), "shape entries")
    art("manifest 65 dims", lambda b, f: edit_manifest(b, lambda m: _spec(m, "shape", [1] * 65)), "dimensions")
    art("manifest empty input name", lambda b, f: edit_manifest(b, lambda m: _spec(m, "name", "")), "1 to 256 bytes")
    art("manifest name of 300 bytes", lambda b, f: edit_manifest(b, lambda m: _spec(m, "name", "n" * 300)), "1 to 256 bytes")
    art("manifest name with a newline", lambda b, f: edit_manifest(b, lambda m: _spec(m, "name", "x\ny")), "control character")
    art("manifest empty dim name", lambda b, f: edit_manifest(b, lambda m: _spec(m, "shape", ["", 4])), "dimension name")
    art("manifest outputs named twice", lambda b, f: edit_manifest(
        b, lambda m: {**m, "outputs": m["outputs"] * 2}), "used twice")
    art("manifest is a list", lambda b, f: with_manifest(b, "[1, 2]"), "must be a JSON object")
    art("manifest invalid UTF-8", lambda b, f: with_manifest(b, b'{"schema": 1, "name": "\xff\xfe"}'), "not valid JSON")
    art("manifest golden is text", lambda b, f: edit_manifest(b, lambda m: {**m, "golden": "yes"}), "true or false")
    art("manifest metadata a list", lambda b, f: edit_manifest(b, lambda m: {**m, "metadata": [1]}), "must be an object")
    art("manifest lists two inputs", lambda b, f: edit_manifest(
        b, lambda m: {**m, "inputs": m["inputs"] + [{"name": "z", "dtype": "float32", "shape": [1]}]}), "forward() takes")
    art("manifest without name", lambda b, f: edit_manifest(b, lambda m: {k: v for k, v in m.items() if k != "name"}),
        "missing field 'name'")
    art("manifest checksum md5", lambda b, f: edit_manifest(b, lambda m: {**m, "checksum": "md5:00"}), "sha256")
    # The golden file.
    art("golden missing", lambda b, f: rewrite(b, lambda n, p: None if n.endswith("golden.pt") else p), "golden.pt is missing")
    art("golden random bytes", _golden_edit(lambda f: os.urandom(512)), "golden.pt")
    art("golden nested 100,000 deep", _golden_edit(lambda f: torch_save_with_pickle(deep_list_pickle(100_000))),
        "nests containers")
    art("golden dict nested 5,000 deep", _golden_edit(lambda f: torch_save_with_pickle(deep_dict_pickle(5_000))),
        "nests containers")
    art("golden runs code", _golden_edit(lambda f: torch_save_with_pickle(exploit_pickle(f / "MARKER"))),
        "golden.pt", marker=True)
    art("golden without outputs", _golden_edit(lambda f: torch_save_bytes({"inputs": [torch.ones(1, 4)]})), "no 'outputs'")
    art("golden holds text", _golden_edit(lambda f: torch_save_bytes("hello")), "must hold a dict")
    art("golden memo index 2^32 - 16", _golden_edit(lambda f: torch_save_with_pickle(b"\x80\x02Nr\xf0\xff\xff\xff.")),
        "memo index")
    # The model's own pickles and code.
    art("data.pkl nested 100,000 deep", _data_pkl(deep_list_pickle(100_000)), "nests containers")
    art("data.pkl unknown opcode", _data_pkl(b"\x80\x02\xff."), "unknown opcode")
    art("data.pkl string past the end", _data_pkl(b"\x80\x02X\xff\xff\xff\x7fabc."), "past the end")
    art("data.pkl memo index 2^32 - 1", _data_pkl(b"\x80\x02]r\xff\xff\xff\xff."), "memo index")
    art("data.pkl reads an unset memo", _data_pkl(b"\x80\x02h\x07."), "never set")
    art("data.pkl without STOP", _data_pkl(b"\x80\x02]"), "STOP")
    art("data.pkl pops an empty stack", _data_pkl(b"\x80\x020."), "underflow")
    art("data.pkl runs code", lambda b, f: replace_record(b, "/data.pkl", exploit_pickle(f / "MARKER")),
        "not a loadable TorchScript archive", marker=True)
    art("data.pkl holds an int", _data_pkl(pickle.dumps(7, protocol=2)), "not a loadable TorchScript archive")
    art("constants.pkl garbage", lambda b, f: replace_record(b, "/constants.pkl", os.urandom(64)), "constants.pkl")
    art("code nested 10,000 brackets", _code(lambda: b"def forward(self, x):\n  return " + b"(" * 10000 + b"x" + b")" * 10000 + b"\n"),
        "nests brackets")
    art("code indented 5,000 columns", _code(lambda: b"def forward(self, x):\n" + b" " * 5000 + b"return x\n"),
        "indented more than")
    art("code is not Python", _code(lambda: b"def forward(self, x:\n  return ]]\n"), "not a loadable TorchScript archive")
    art("weights record truncated", lambda b, f: rewrite(b, lambda n, p: p[:2] if n.endswith("/data/0") else p),
        "are declared")
    art("weights changed, checksum kept", lambda b, f: _flip_weights(b), "checksum mismatch")
    art("forward takes an int", lambda b, f: _int_argument_model(), "forward() argument 'k'")

    # Input files.
    def inp(name, data_fn, message=""):
        c.append(Case(name, "input", "bad_input", _inp(data_fn), message))

    for what, message in [("missing", "does not exist"), ("dangling", "does not exist"), ("directory", "a directory"),
                          ("fifo", "FIFO"), ("/dev/zero", "character device"), ("socket", "socket")]:
        c.append(Case(f"input file is {what}", "input", "bad_input", _special(what, "input"), message))
    inp("input empty", lambda f: b"", "is empty")
    inp("input random bytes", lambda f: os.urandom(2048), "not a tensor file written by torch.save")
    inp("input text", lambda f: b"x,y\n1,2\n", "not a tensor file written by torch.save")
    inp("input plain pickle", lambda f: pickle.dumps([1, 2]), "not a tensor file written by torch.save")
    inp("input legacy torch.save", lambda f: torch_save_bytes(torch.ones(2, 4), _use_new_zipfile_serialization=False),
        "not a tensor file")
    inp("input truncated", lambda f: torch_save_bytes([torch.ones(2, 4)])[:-40], "not a tensor file")
    inp("input zip of something else", lambda f: build_zip([("a/readme.txt", b"hi")]), "not a tensor file")
    inp("input nested 100,000 deep", lambda f: torch_save_with_pickle(deep_list_pickle(100_000)), "nests containers")
    inp("input dict nested 5,000 deep", lambda f: torch_save_with_pickle(deep_dict_pickle(5_000)), "nests containers")
    c.append(Case("input runs code", "input", "bad_input",
                  _inp(lambda f: torch_save_with_pickle(exploit_pickle(f / "MARKER"))), "not a tensor file", marker=True))
    inp("input memo index 2^32 - 16", lambda f: torch_save_with_pickle(b"\x80\x02Nr\xf0\xff\xff\xff."), "memo index")
    inp("input zip bomb", lambda f: zip_bomb_record("archive/data.pkl"), "inflates to")
    inp("input unknown opcode", lambda f: torch_save_with_pickle(b"\x80\x02\xfe."), "unknown opcode")
    inp("input dict with int keys", lambda f: torch_save_bytes({0: torch.ones(2, 4)}), "dict keys must be input names")
    inp("input list with text", lambda f: torch_save_bytes([torch.ones(2, 4), "x"]), "expected a tensor")
    inp("input holds text", lambda f: torch_save_bytes("hello"), "expected a tensor")
    inp("input wrong dtype", lambda f: torch_save_bytes([torch.ones(2, 4, dtype=torch.float64)]), "expected dtype float32")
    inp("input wrong rank", lambda f: torch_save_bytes([torch.ones(2, 4, 1)]), "dimensions")
    inp("input wrong dim", lambda f: torch_save_bytes([torch.ones(2, 5)]), "dim 1 expected 4, got 5")
    inp("input two tensors for one input", lambda f: torch_save_bytes([torch.ones(2, 4), torch.ones(2, 4)]),
        "expects 1 input")
    inp("input unknown name", lambda f: torch_save_bytes({"image": torch.ones(2, 4)}), "unknown 'image'")
    inp("input expanded to 2e9 rows", lambda f: torch_save_bytes([torch.ones(1, 4).expand(2_000_000_000, 4)]),
        "cannot be allocated")
    inp("input sizes past its storage", lambda f: _oversized_view(), "holds 4 bytes, but 32 are declared")

    # Options.
    def opt(name, overrides, message=""):
        c.append(Case(name, "option", "bad_option", lambda folder, good, o=overrides: dict(o), message))

    opt("threads -1", {"threads": -1}, "threads")
    opt("threads 1,000,000", {"threads": 1_000_000}, "threads")
    opt("threads 2^32 + 1", {"threads": 2**32 + 1}, "threads")
    opt("threads 2^80", {"threads": 2**80}, "threads")
    opt("device cpu:1", {"device": "cpu:1"}, "device")
    opt("device tpu", {"device": "tpu"}, "device")
    opt("device empty", {"device": ""}, "device")
    if not torch.cuda.is_available():
        opt("device cuda without CUDA", {"device": "cuda"}, "device")
    opt("atol NaN", {"atol": float("nan")}, "atol")
    opt("atol -1", {"atol": -1.0}, "atol")
    opt("rtol infinite", {"rtol": float("inf")}, "rtol")

    # Outputs that would destroy what the command reads.
    def out(name, build, message=""):
        c.append(Case(name, "output", "bad_option", build, message))

    out("output is the artifact", lambda folder, good: {"output": good.artifact}, "which this command reads")
    out("output is the input", lambda folder, good: {"output": good.input}, "which this command reads")
    out("output links to the artifact", lambda folder, good: {"output": _symlink(folder / "link.pt", good.artifact)},
        "which this command reads")
    out("output is a hard link to the artifact", lambda folder, good: {"output": _hardlink(folder / "hard.pt", good.artifact)},
        "which this command reads")
    out("output is a directory", lambda folder, good: {"output": folder}, "is a directory")
    out("output folder missing", lambda folder, good: {"output": folder / "no" / "such" / "out.pt"}, "does not exist")

    # ONNX models (.onnx): the protobuf walk, then ONNX Runtime's own parser.
    def onnx_art(name, data_fn, message):
        def build(folder: Path, good: Good) -> dict:
            return {"artifact": _file(folder, "hostile.onnx", data_fn(good))}

        c.append(Case(f"onnx: {name}", "artifact", "bad_artifact", build, message))

    onnx_art("random bytes", lambda g: b"\0" + bytes(range(256)) * 16, "not an ONNX model")
    onnx_art("a TorchScript archive named .onnx", lambda g: g.bytes, "does not start with field 1")
    onnx_art("truncated to half", lambda g: onnx_model(g)[: len(onnx_model(g)) // 2], "ONNX")
    onnx_art("truncated by one byte", lambda g: onnx_model(g)[:-1], "ONNX")
    onnx_art("wire type 7", lambda g: b"\x08\x07\x3f\x01", "wire type 7")
    onnx_art("graph length past the end", lambda g: b"\x08\x07\x3a\xff\xff\xff\x07", "truncated")
    onnx_art("varint of 11 bytes", lambda g: b"\x08" + b"\xff" * 11, "longer than 10 bytes")
    onnx_art("no graph", lambda g: b"\x08\x07\x12\x04abcd", "has no graph")
    onnx_art("golden not base64", lambda g: onnx_model(g, golden="!!!!"), "not base64")
    onnx_art("golden base64 of junk", lambda g: onnx_model(g, golden="AAAAAAAA"), "golden")
    onnx_art("manifest not JSON", lambda g: onnx_model(g, manifest="{"), "manifest.json")
    onnx_art("manifest lies about the input shape",
             lambda g: onnx_model(g, manifest=_onnx_manifest(g, lambda m: _spec(m, "shape", m["inputs"][0]["shape"][:1] + [5]))),
             "ONNX graph")
    onnx_art("manifest lies about the input dtype",
             lambda g: onnx_model(g, manifest=_onnx_manifest(g, lambda m: _spec(m, "dtype", "int64"))), "ONNX graph")
    onnx_art("unknown operator", lambda g: onnx_model(g, op="TorchportNoSuchOp"), "cannot load the model")
    onnx_art("operator of an unknown domain", lambda g: onnx_model(g, domain="tp.unknown"), "cannot load the model")
    return c


def onnx_model(good: Good, *, op: str = "Relu", domain: str = "", manifest: Optional[str] = None,
               golden: Optional[str] = None) -> bytes:
    """A one-node ONNX model, y = op(x) with x float32 [N, 4] (the good artifact's
    contract), carrying `manifest` and `golden` in its metadata_props when given."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain)], "hostile", [x], [y])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    for key, value in (("torchport/manifest.json", manifest), ("torchport/golden.pt", golden)):
        if value is not None:
            model.metadata_props.add(key=key, value=value)
    return model.SerializeToString()


def _onnx_manifest(good: Good, change: Callable[[dict], object]) -> str:
    """The good artifact's manifest as an ONNX model's, edited by `change`."""
    with zipfile.ZipFile(io.BytesIO(good.bytes)) as z:
        name = next(n for n in z.namelist() if n.endswith("extra/torchport/manifest.json"))
        m = json.loads(z.read(name))
    m.update(format="onnx", has_golden=False)
    m.pop("checksum", None)
    m.pop("optimize", None)
    change(m)
    return json.dumps(m)


def _spec(m: dict, key: str, value) -> dict:
    m["inputs"][0][key] = value
    return m


def _symlink(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def _hardlink(path: Path, target: Path) -> Path:
    os.link(target, path)
    return path


def _append_bomb(artifact: bytes) -> bytes:
    records = [(info.filename, payload) for info, payload in zip_records(artifact)]
    prefix = records[0][0].split("/")[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, payload in records:
            z.writestr(name, payload)
        z.writestr(f"{prefix}/extra/bomb", b"\0" * 4096, compress_type=zipfile.ZIP_DEFLATED)
    data = buf.getvalue()
    return patch_central_directory(data, 24, 4, 2**31, entry=len(central_directory(data)) - 1)


def _duplicate_manifest(artifact: bytes) -> bytes:
    records = [(info.filename, payload) for info, payload in zip_records(artifact)]
    name = next(n for n, _ in records if n.endswith("extra/torchport/manifest.json"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, p in records:
            z.writestr(n, p)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            z.writestr(name, b'{"schema": 1}')
    return buf.getvalue()


def _flip_weights(artifact: bytes) -> bytes:
    def edit(name, payload):
        if "/data/" in name and len(payload) >= 4:
            b = bytearray(payload)
            b[0] ^= 0x40
            return bytes(b)
        return payload

    return rewrite(artifact, edit, fix_checksum=False)


def _int_argument_model() -> bytes:
    import warnings

    class TakesInt(torch.nn.Module):
        def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
            return x * k

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        buf = io.BytesIO()
        torch.jit.save(torch.jit.script(TakesInt()), buf)
    return buf.getvalue()


def _oversized_view() -> bytes:
    """A saved tensor whose declared size needs more storage than the file holds."""
    records = zip_records(torch_save_bytes([torch.ones(2, 4)]))
    storage = next(i.filename for i, _ in records if "/data/" in i.filename)
    return build_zip([(i.filename, p[:4] if i.filename == storage else p) for i, p in records])


CASES: list[Case] = _cases()
