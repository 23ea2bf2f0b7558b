"""The adversarial table for the surfaces added after the TorchScript hardening
(issue 23): `.pt2` and `.pte` artifacts (derived by mutating the one compiled
artifact of each), images, `.npz` arrays, tuning profiles, Triton repositories
and Batcher faults. tests/test_adversarial.py runs each case through every entry
point that accepts its surface (tests/adversarial_worker.py, `--surfaces`):

    surface          binding  torchport-run  torchport
    pt2, pte            x           x            x      (load and run)
    image, npz          x           x            x      (an input file)
    profile             x           x                   (`profile=`, `--profile`)
    triton                                       x      (`torchport triton`)
    batcher             x                               (`Batcher`)

Every case says the error kind all its entry points report, a phrase their
messages hold, and its class (what the issue's adversarial pass found for the
surface: security, signal, memory, malformed, contract, option).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from hostile import build_zip, deep_list_pickle, patch_central_directory, patch_eocd, symlink_entry
from hostile_inputs import jpeg_of, jpeg_segments, npy_with_header, npz_deflated, png_chunk, png_file, png_of, with_frame

MANIFEST = "torchport/manifest.json"
SURFACES = ("pt2", "pte", "onnx", "image", "npz", "profile", "triton", "batcher")
CLASSES = ("security", "signal", "memory", "malformed", "contract", "option")
ENTRIES = {"pt2": ("binding", "binary", "command"), "pte": ("binding", "binary", "command"),
           "onnx": ("binding", "binary", "command"),
           "image": ("binding", "binary", "command"), "npz": ("binding", "binary", "command"),
           "profile": ("binding", "binary"), "triton": ("command",), "batcher": ("binding",)}


@dataclass
class Goods:
    """The good files every case starts from: the MLP (input 'x' [batch, 6] float32,
    output [batch, 3]) as TorchScript, `.pt2`, `.pte` and ONNX, an input file for it, and
    a TorchScript model of images (input 'image' uint8 [1, 16, 24, 3])."""

    pt: Path
    pt2: Path
    pte: Optional[Path]
    x_input: Path
    image_model: Path
    bytes_of: dict = field(default_factory=dict, repr=False)
    onnx: Optional[Path] = None  # the MLP as ONNX (None without onnxruntime)

    def read(self, path: Path) -> bytes:
        if path not in self.bytes_of:
            self.bytes_of[path] = path.read_bytes()
        return self.bytes_of[path]


@dataclass
class SurfaceCase:
    """`build(folder, goods)` writes the case's files and returns what it overrides:
    artifact, input, profile (paths), argv (the `torchport` command line) or call
    (a function of the Batcher run in the binding). `names` is the file the
    messages must name (default: the hostile file)."""

    name: str
    surface: str
    cls: str
    kind: str
    message: str
    build: Callable[[Path, Goods], dict]
    xfail: str = ""  # a known failure of the runtime: what goes wrong (a strict xfail until it is fixed)

    @property
    def entries(self) -> tuple[str, ...]:
        return ENTRIES[self.surface]


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# --- .pt2: the compiled package, record by record -------------------------------------


def _records(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _rezip(records, extra: list = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in records:
            z.writestr(zipfile.ZipInfo(name), data)
        for info, data in extra:
            z.writestr(info, data)
    return buf.getvalue()


def pt2_edit(data: bytes, edit: Callable[[str, bytes], Optional[bytes]], *, manifest: Callable[[dict], None] = None,
             reseal: bool = True, extra: list = (), text: Callable[[str], str] = str) -> bytes:
    """The package with each record through `edit(name, bytes)` (None drops it),
    the manifest changed by `manifest(doc)` and then as JSON text by `text` (for
    what Python's json cannot build), and with `reseal` its checksum recomputed
    (so that the edit is judged on its own, not as a mismatch)."""
    from torchport.manifest import payload_checksum

    records = [(n, out) for n, d in _records(data) if (out := edit(n, d)) is not None]
    name = next((n for n, _ in records if n.endswith("/" + MANIFEST)), None)
    if name is None:
        return _rezip(records, extra)
    doc = json.loads(dict(records)[name])
    if manifest:
        manifest(doc)
    rest = [(n, d) for n, d in records if n != name]
    packed = _rezip(rest, [*extra, (zipfile.ZipInfo(name), text(json.dumps(doc)).encode())])
    if reseal and "checksum" in doc:
        try:
            doc["checksum"] = payload_checksum(packed)
        except Exception:  # noqa: BLE001 - a package the runtime cannot even hash (a climbing name) stays as it is
            return packed
        packed = _rezip(rest, [*extra, (zipfile.ZipInfo(name), text(json.dumps(doc)).encode())])
    return packed


def _keep(name, data):
    return data


def _artifact_adder(out: list, surface: str):
    """`add(name, cls, fn, message, kind)` for a case whose artifact is `fn(bytes of the
    good .pt2 or .pte)`."""
    def add(name, cls, fn, message, kind="bad_artifact"):
        def build(folder, goods):
            return {"artifact": _write(folder, f"hostile.{surface}", fn(goods.read(getattr(goods, surface))))}

        out.append(SurfaceCase(f"{surface}: {name}", surface, cls, kind, message, build))

    return add


def _top(data: bytes) -> str:
    return _records(data)[0][0].split("/", 1)[0]


def _first_shape(doc: dict, dims: list) -> None:
    doc["inputs"][0]["shape"] = dims


def _pt2_cases() -> list[SurfaceCase]:
    out: list[SurfaceCase] = []
    add = _artifact_adder(out, "pt2")

    lib = lambda n: n.endswith(".so")  # noqa: E731 - the compiled kernels
    add("empty file", "malformed", lambda b: b"", "is empty")
    add("truncated to half", "malformed", lambda b: b[: len(b) // 2], "no end-of-central-directory record")
    add("truncated by one byte", "malformed", lambda b: b[:-1], "no end-of-central-directory record")
    add("manifest record dropped", "security", lambda b: pt2_edit(b, lambda n, d: None if n.endswith(MANIFEST) else d), "without torchport's records")
    add("checksum dropped", "security", lambda b: pt2_edit(b, _keep, manifest=lambda m: m.pop("checksum")), "records no checksum; a .pt2 must carry one")
    add("manifest shape edited, not resealed", "security",
        lambda b: pt2_edit(b, _keep, manifest=lambda m: _first_shape(m, ["batch", 7]), reseal=False), "checksum")
    add("manifest shape resealed, disagreeing with the package", "security",
        lambda b: pt2_edit(b, _keep, manifest=lambda m: _first_shape(m, ["batch", 7])), "input 'x': dim 1 expected 7, got 6",
        kind="bad_input")
    add("record climbing out with ..", "security",
        lambda b: pt2_edit(b, _keep, extra=[(f"{_top(b)}/" + "../" * 8 + "tmp/evil", b"x")]), "climbs out of its folder")
    add("record with an absolute name", "security", lambda b: pt2_edit(b, _keep, extra=[("/tmp/evil", b"x")]),
        "is an absolute path")
    add("record that is a symbolic link", "security",
        lambda b: pt2_edit(b, _keep, extra=[(symlink_entry(f"{_top(b)}/data/link"), b"/etc/passwd")]), "link")
    add("kernel library replaced by junk, resealed", "signal",
        lambda b: pt2_edit(b, lambda n, d: os.urandom(4096) if lib(n) else d), "is not a loadable AOTInductor package")
    add("kernel library emptied, resealed", "signal", lambda b: pt2_edit(b, lambda n, d: b"" if lib(n) else d),
        "is not a loadable AOTInductor package")
    add("kernel library byte flipped, not resealed", "security",
        lambda b: pt2_edit(b, lambda n, d: _flip(d) if lib(n) else d, reseal=False), "checksum")
    add("golden file junk, resealed", "malformed", lambda b: pt2_edit(b, lambda n, d: os.urandom(300) if n.endswith("golden.pt") else d), "golden")
    add("record declares 2 GiB", "memory", lambda b: patch_central_directory(patch_central_directory(b, 20, 4, 2**31), 24, 4, 2**31), "(2147483648 bytes) lies outside the file")
    add("65,534 records declared", "memory", lambda b: patch_eocd(patch_eocd(b, 10, 2, 0xFFFE), 8, 2, 0xFFFE), "is malformed")
    add("manifest nested 100,000 deep, resealed", "memory",
        lambda b: pt2_edit(b, _keep, manifest=lambda m: m["metadata"].update(deep="@deep@"),
                           text=lambda t: t.replace('"@deep@"', "[" * 100_000 + "]" * 100_000)),
        "nests more than 64 levels deep")
    add("manifest number past a double's range, resealed", "malformed",
        lambda b: pt2_edit(b, _keep, manifest=lambda m: m["metadata"].update(big="@big@"),
                           text=lambda t: t.replace('"@big@"', "1e999")), "not valid JSON")
    return out


def _flip(data: bytes, at: int = None) -> bytes:
    b = bytearray(data)
    b[len(b) // 2 if at is None else at] ^= 0x55
    return bytes(b)


# --- .pte: program, manifest, golden file and torchport's footer ---------------------------


def pte_parts(data: bytes) -> tuple[bytes, bytes, bytes]:
    p, m, g = struct.unpack("<QQQ", data[-24:])
    return data[:p], data[p:p + m], data[p + m:p + m + g]


def pte_pack(program: bytes, manifest: bytes, golden: bytes, *, reseal: bool = True) -> bytes:
    from torchport.formats import pack_pte
    from torchport.manifest import payload_checksum

    if not reseal:
        return pack_pte(program, manifest, golden)
    try:
        doc = json.loads(manifest)
    except ValueError:
        return pack_pte(program, manifest, golden)
    if isinstance(doc, dict) and "checksum" in doc:
        doc.pop("checksum")
        doc["checksum"] = payload_checksum(pack_pte(program, json.dumps(doc).encode(), golden))
        manifest = json.dumps(doc).encode()
    return pack_pte(program, manifest, golden)


def _pte_manifest(change: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def make(data):
        program, manifest, golden = pte_parts(data)
        doc = json.loads(manifest)
        change(doc)
        return pte_pack(program, json.dumps(doc).encode(), golden)

    return make


def _pte_footer(offset: int, value: int) -> Callable[[bytes], bytes]:
    def make(data):
        b = bytearray(data)
        b[len(b) - 24 + offset:len(b) - 16 + offset] = struct.pack("<Q", value)
        return bytes(b)

    return make


def _pte_plan(change: Callable[[object], None]) -> Callable[[bytes], bytes]:
    """A program edit through ExecuTorch's own serializer: `change(plan)` edits the
    first execution plan (executorch.exir.schema dataclasses), for the structure
    that word-level edits cannot build (a field left out, a value added)."""
    def make(program: bytes) -> bytes:
        from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

        pte = deserialize_pte_binary(program)
        change(pte.program.execution_plan[0])
        return bytes(serialize_pte_binary(pte, extract_delegate_segments=True))

    return make


def _call_first(plan, name: Optional[str], args: list) -> None:
    """Adds operator `name` ("out" overload; None leaves the name out) and a kernel
    call of it with `args` before the plan's first instruction."""
    from executorch.exir import schema

    plan.operators.append(schema.Operator(name=name, overload="out"))
    call = schema.KernelCall(op_index=len(plan.operators) - 1, args=args)
    plan.chains[0].instructions.insert(0, schema.Instruction(call))


def _int_list_of(item: Callable[[object], int]) -> Callable[[object], None]:
    """Adds an int list whose one item is value `item(plan)` and a call of
    aten::permute_copy.out (self, dims, out) that passes it as its dims."""
    def change(plan):
        from executorch.exir import schema

        plan.values.append(schema.EValue(schema.IntList(items=[item(plan)])))
        _call_first(plan, "aten::permute_copy", [plan.inputs[0], len(plan.values) - 1, *(plan.outputs[:1] * 2)])

    return change


def _a_double(plan) -> int:
    from executorch.exir import schema

    plan.values.append(schema.EValue(schema.Double(1.5)))
    return len(plan.values) - 1


def _pte_cases() -> list[SurfaceCase]:
    out: list[SurfaceCase] = []
    add = _artifact_adder(out, "pte")

    def program(change, reseal=True):
        return lambda d: pte_pack(change(pte_parts(d)[0]), *pte_parts(d)[1:], reseal=reseal)

    add("truncated to half", "malformed", lambda d: d[: len(d) // 2], "a bare ExecuTorch program without torchport's manifest")
    add("truncated by one byte", "malformed", lambda d: d[:-1], "without torchport's footer")
    add("footer: program size past the end", "memory", _pte_footer(0, 2**62), "do not add up to")
    add("footer: manifest size past the end", "memory", _pte_footer(8, 2**40), "do not add up to")
    add("footer: sizes overflow 64 bits", "memory", _pte_footer(16, 2**64 - 8), "do not add up to")
    add("checksum dropped", "security", _pte_manifest(lambda m: m.pop("checksum")), "records no checksum; a .pte must carry one")
    add("program byte flipped, not resealed", "security", program(_flip, reseal=False), "checksum")
    add("program replaced by junk, resealed", "signal", program(lambda p: p[:8] + os.urandom(len(p) - 8)), "malformed ExecuTorch program")
    add("program truncated, resealed", "signal", program(lambda p: p[: len(p) // 2]), "ExecuTorch")
    add("flatbuffer root offset past the end, resealed", "signal",
        program(lambda p: struct.pack("<I", len(p) * 4) + p[4:]), "malformed ExecuTorch program")
    add("manifest not JSON", "malformed", lambda d: pte_pack(pte_parts(d)[0], b"{", pte_parts(d)[2]), "not valid JSON")
    add("manifest shape disagreeing, resealed", "contract", _pte_manifest(lambda m: _first_shape(m, ["batch", 7])),
        "input 'x': dim 1 expected 7, got 6", kind="bad_input")
    add("golden file junk, resealed", "malformed",
        lambda d: pte_pack(*pte_parts(d)[:2], os.urandom(200)), "golden")
    # An int list item of another type aborts ExecuTorch when the kernel reads it
    # (SIGABRT). An operator without a name crashes ExecuTorch on the undelegated
    # program (test_artifact_security.py); here ExecuTorch would refuse it in its
    # own words: the walk refuses both first, naming the value or operator.
    add("operator without a name, called, resealed", "signal",
        program(_pte_plan(lambda plan: _call_first(plan, None, [*plan.inputs[:1], *plan.outputs[:1]]))),
        "has no name")
    add("int list holding a float, resealed", "signal", program(_pte_plan(_int_list_of(_a_double))),
        "which is not an int (it is a float)")
    add("int list holding a tensor, resealed", "signal", program(_pte_plan(_int_list_of(lambda plan: plan.inputs[0]))),
        "which is not an int (it is a tensor)")
    add("int list item past the values, resealed", "memory",
        program(_pte_plan(_int_list_of(lambda plan: len(plan.values) + 40))), "refers to value")
    return out


# --- images -------------------------------------------------------------------------------


def _gray(h=16, w=24):
    return np.random.default_rng(0).integers(0, 256, size=(h, w, 3))


def _png_chunks(data: bytes) -> list[tuple[int, bytes]]:
    at, out = 8, []
    while at + 8 <= len(data):
        n = struct.unpack(">I", data[at:at + 4])[0]
        out.append((at, data[at + 4:at + 8]))
        at += 12 + n
    return out


def _png_set(data: bytes, kind: bytes, offset: int, payload: bytes) -> bytes:
    at = next(a for a, k in _png_chunks(data) if k == kind)
    b = bytearray(data)
    b[at + offset:at + offset + len(payload)] = payload
    return bytes(b)


def _drop_jpeg_segment(data: bytes, marker: int) -> bytes:
    _, at, length = next(s for s in jpeg_segments(data) if s[0] == marker)
    return data[:at] + data[at + 2 + length:]


def onnx_edit(data: bytes, change: Callable) -> bytes:
    """The ONNX model with `change(proto)` applied (the onnx package's own protobuf)."""
    import onnx

    proto = onnx.load_from_string(data)
    change(proto)
    return proto.SerializeToString()


def _onnx_prop(key: str, value: Optional[str]) -> Callable:
    """Sets metadata_props[key] (torchport's records), or adds a second entry when `value` is None."""
    def change(proto) -> None:
        entry = next(p for p in proto.metadata_props if p.key == key)
        if value is None:
            proto.metadata_props.add(key=key, value=entry.value)
        else:
            entry.value = value

    return change


def _onnx_manifest(edit: Callable[[dict], None]) -> Callable:
    def change(proto) -> None:
        entry = next(p for p in proto.metadata_props if p.key == MANIFEST)
        doc = json.loads(entry.value)
        edit(doc)
        entry.value = json.dumps(doc)

    return change


def _onnx_external(where: str) -> Callable:
    """A tensor's data moved to 'weights.bin' (which a case writes beside it):
    the first initializer, or a Constant node's value."""
    def change(proto) -> None:
        import onnx

        tensor = proto.graph.initializer[0]
        if where == "constant":  # the node is copied into the graph when inserted: edit it first
            node = onnx.helper.make_node("Constant", [], ["hostile_constant"],
                                         value=onnx.TensorProto.FromString(tensor.SerializeToString()))
            tensor = node.attribute[0].t
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="weights.bin")
        if where == "constant":
            proto.graph.node.insert(0, node)

    return change


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def onnx_nested(data: bytes, depth: int) -> bytes:
    """The model with a second graph field (protobuf merges it into the first) whose
    one If node holds an If as its then-branch, `depth` levels down, written by hand:
    the onnx package's own protobuf refuses to build past 100 nested messages."""
    graph = b""
    for _ in range(depth):
        attribute = _pb(1, b"then_branch") + _pb(6, graph) + _varint(20 << 3) + _varint(5)  # type GRAPH
        graph = _pb(1, _pb(4, b"If") + _pb(5, attribute))  # GraphProto.node: NodeProto(op_type, attribute)
    return data + _pb(7, graph)


def _onnx_cases() -> list[SurfaceCase]:
    out: list[SurfaceCase] = []
    add = _artifact_adder(out, "onnx")
    edit = lambda change: lambda b: onnx_edit(b, change)  # noqa: E731
    add("empty file", "malformed", lambda b: b"", "is empty")
    add("truncated by half", "malformed", lambda b: b[: len(b) // 2], "truncated")
    add("first field a length claiming 2^40 bytes", "memory", lambda b: b[:2] + b"\x3a\x80\x80\x80\x80\x80\x20" + b[2:],
        "truncated")
    add("manifest not JSON", "malformed", edit(_onnx_prop(MANIFEST, "{")), "not valid JSON")
    add("manifest number past a double's range", "malformed",
        edit(_onnx_prop(MANIFEST, '{"schema": 1e999}')), "not valid JSON")
    add("manifest held twice", "malformed", edit(_onnx_prop(MANIFEST, None)), "holds 'torchport/manifest.json' twice")
    add("golden not base64", "malformed", edit(_onnx_prop("torchport/golden.pt", "***")), "expected base64")
    add("manifest input dtype float64 against the graph's float32", "contract",
        edit(_onnx_manifest(lambda m: m["inputs"][0].update(dtype="float64"))), "float64")
    add("graph nested 100 If levels deep", "memory", lambda b: onnx_nested(b, 100), "nest more than 64 levels deep")

    def external(where):
        def build(folder, goods):
            (folder / "weights.bin").write_bytes(bytes(4 * 18))
            return {"artifact": _write(folder, "hostile.onnx", onnx_edit(goods.read(goods.onnx), _onnx_external(where)))}

        return build

    for where in ("initializer", "constant"):
        out.append(SurfaceCase(f"onnx: {where} kept in another file", "onnx", "security", "bad_artifact",
                               "keeps its data in another file ('weights.bin')", external(where)))
    return out


def _image_cases() -> list[SurfaceCase]:
    out: list[SurfaceCase] = []
    png = lambda: png_of(_gray(), 8, 2)  # noqa: E731 - a good 16x24 RGB PNG
    idat = lambda: zlib.compress(b"\0" * (16 * 73))  # noqa: E731

    def add(name, cls, fn, message, suffix=".png", kind="bad_input", xfail=""):
        def build(folder, goods):
            return {"artifact": goods.image_model, "input": _write(folder, f"hostile{suffix}", fn())}

        out.append(SurfaceCase(f"image: {name}", "image", cls, kind, message, build, xfail))

    add("PNG signature only", "malformed", lambda: b"\x89PNG\r\n\x1a\n", "its first chunk is not IHDR")
    add("PNG truncated in IDAT", "malformed", lambda: png()[:-30], "Corrupt PNG")
    add("PNG without IDAT", "malformed", lambda: png_chunk_file([b"IHDR"]), "Corrupt PNG")
    add("PNG chunk length 2^31", "memory", lambda: _png_set(png(), b"IDAT", 0, struct.pack(">I", 2**31)), "is not a readable PNG/JPEG image")
    add("PNG width 0", "malformed", lambda: png_file(0, 16, 8, 2, idat()), "declares 0x16 pixels; each side must be 1 to 16384")
    add("PNG bit depth 3", "malformed", lambda: png_file(24, 16, 3, 0, idat()), "bit depth 3 is not a PNG one")
    add("PNG interlace method 2", "malformed", lambda: png_file(24, 16, 8, 2, idat(), interlace=2), "interlace method 2 is not a PNG one")
    add("PNG palette without PLTE", "malformed", lambda: png_file(24, 16, 8, 3, zlib.compress(b"\0" * 16 * 25)), "is not a readable PNG/JPEG image")
    add("PNG IHDR CRC wrong", "malformed", lambda: _png_set(png(), b"IHDR", 21, b"\0\0\0\0"), "IHDR chunk at byte 8 fails its CRC")
    add("PNG of another size than the model takes", "contract", lambda: png_of(_gray(8, 8), 8, 2), "input 'image': dim 1 expected 16, got 8")
    add("JPEG SOI only", "malformed", lambda: b"\xff\xd8", "too short (2 bytes)", ".jpg")
    add("JPEG truncated after the header", "malformed", lambda: jpeg_of()[:200], "a marker segment declares 31 bytes",
        ".jpg")
    add("JPEG without a scan", "malformed", lambda: jpeg_of()[: next(a for m, a, _ in jpeg_segments(jpeg_of()) if m == 0xDA)],
        "cannot hold the 18 blocks its 24x16 header declares", ".jpg")
    add("JPEG height 0", "malformed", lambda: with_frame(jpeg_of(), height=0), "declares 24x0 pixels", ".jpg")
    add("JPEG without Huffman tables", "signal", lambda: _drop_jpeg_segment(_drop_jpeg_segment(jpeg_of(), 0xC4), 0xC4),
        "no DHT segment before it defined", ".jpg")
    add("JPEG without quantisation tables", "signal", lambda: _drop_jpeg_segment(jpeg_of(), 0xDB),
        "before quantisation table 0", ".jpg")
    add("GIF named .png", "malformed", lambda: b"GIF89a" + bytes(64), "not a tensor file written by torch.save")
    return out


def png_chunk_file(kinds: list[bytes]) -> bytes:
    ihdr = struct.pack(">IIBBBBB", 24, 16, 8, 2, 0, 0, 0)
    body = b"".join(png_chunk(k, ihdr if k == b"IHDR" else b"") for k in kinds)
    return b"\x89PNG\r\n\x1a\n" + body + png_chunk(b"IEND", b"")


# --- .npz ---------------------------------------------------------------------------------


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _x(rows=3, cols=6, dtype=np.float32):
    return _npy(np.ones((rows, cols), dtype))


def _npz_cases() -> list[SurfaceCase]:
    out: list[SurfaceCase] = []

    def add(name, cls, fn, message, kind="bad_input"):
        def build(folder, goods):
            return {"artifact": goods.pt, "input": _write(folder, "hostile.npz", fn())}

        out.append(SurfaceCase(f"npz: {name}", "npz", cls, kind, message, build))

    add("an empty zip", "malformed", lambda: build_zip([]), "archive does not contain any files")
    add("truncated", "malformed", lambda: build_zip([("x.npy", _x())])[:-10], "no end-of-central-directory record")
    add("member that is not .npy", "malformed", lambda: build_zip([("readme.txt", b"hello")]), "not in a subdirectory")
    add("member climbing out with ..", "security", lambda: build_zip([("../../x.npy", _x())]), "climbs out of its folder")
    add("member with an absolute name", "security", lambda: build_zip([("/tmp/x.npy", _x())]), "is an absolute path")
    add("two members for one input", "contract", lambda: build_zip([("a.npy", _x()), ("b.npy", _x())]), "unknown 'a', 'b'; expected 'x'")
    add("member for an unknown input", "contract", lambda: build_zip([("image.npy", _x())]), "unknown 'image'; expected 'x'")
    add("member of float64", "contract", lambda: build_zip([("x.npy", _x(dtype=np.float64))]), "input 'x': expected dtype float32, got float64")
    add("member 3x5", "contract", lambda: build_zip([("x.npy", _x(3, 5))]), "input 'x': dim 1 expected 6, got 5")
    add("member of Python objects (a pickle)", "security",
        lambda: build_zip([("x.npy", npy_with_header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                                                     deep_list_pickle(10)))]), "dtype '|O' is not one torchport reads")
    add("stored member declaring 2 GiB", "memory",
        lambda: patch_central_directory(patch_central_directory(build_zip([("x.npy", _x())]), 20, 4, 2**31), 24, 4, 2**31),
        "lies outside the file")
    add("deflated member declaring 4 GiB - 1", "memory", lambda: npz_deflated("x.npy", _x(), declared=2**32 - 1), "more than the limit of 268435456")
    add("encrypted member", "malformed", lambda: patch_central_directory(build_zip([("x.npy", _x())]), 8, 2, 1), "is encrypted")
    add("unknown compression method", "malformed", lambda: patch_central_directory(build_zip([("x.npy", _x())]), 10, 2, 12),
        "compression method 12")
    add("header shape negative", "malformed",
        lambda: build_zip([("x.npy", npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 6), }"))]), "'shape' holds something other than sizes")
    return out


# --- tuning profiles ------------------------------------------------------------------------


def good_profile(goods: Goods) -> dict:
    from torchport import read_manifest

    m = read_manifest(goods.pt)
    return {"torchport_profile": 1, "artifact_checksum": m.checksum, "format": "torchscript",
            "file_checksum": m.checksum, "threads": 1, "warmup_runs": 0}


def _profile_cases() -> list[SurfaceCase]:
    out: list[SurfaceCase] = []

    def add(name, cls, fn, message, kind="bad_artifact"):
        def build(folder, goods):
            data = fn(goods)
            path = folder / "hostile.profile.json"
            if data is None:
                path.mkdir()
            else:
                path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
            return {"artifact": goods.pt, "profile": path}

        out.append(SurfaceCase(f"profile: {name}", "profile", cls, kind, message, build))

    def edited(**fields):
        return lambda g: {**good_profile(g), **fields}

    add("empty file", "malformed", lambda g: b"", "is empty")
    add("not JSON", "malformed", lambda g: b"{'threads': 2", "not valid JSON")
    add("a JSON list", "malformed", lambda g: b"[1, 2]", "must be a JSON object, got array")
    add("a directory", "malformed", lambda g: None, "is a directory, expected a regular file")
    add("nested 100,000 deep", "memory", lambda g: b"[" * 100_000 + b"]" * 100_000, "nests more than 64 levels deep")
    add("17 MiB", "memory", lambda g: b'{"x": "' + b"a" * (17 << 20) + b'"}', "more than the limit of 1048576")
    add("without torchport_profile", "malformed", lambda g: {k: v for k, v in good_profile(g).items()
                                                            if k != "torchport_profile"}, "torchport_profile")
    add("schema 99", "malformed", edited(torchport_profile=99), "schema 99")
    add("tuned for another artifact", "contract", edited(artifact_checksum="xxh3-128+manifest:" + "0" * 32),
        "artifact_checksum")
    add("threads 2^40", "option", edited(threads=2**40), "threads")
    add("threads -1", "option", edited(threads=-1), "threads")
    add("warmup runs 10^9", "option", edited(warmup_runs=10**9), "warmup_runs")
    add("format tpu", "option", edited(format="tpu"), "format")
    add("atol NaN", "option", lambda g: json.dumps({**good_profile(g), "atol": float("nan")}).encode(), "holds NaN or Infinity")
    add("optimize fast for a .pt2", "option", edited(format="aoti", optimize="fast"), "optimize")
    add("an unknown field", "malformed", edited(run_this="rm -rf /"), "unknown field 'run_this'")
    return out


# --- Triton repositories (`torchport triton`) --------------------------------------------------


def _repo_with(folder: Path, goods: Goods, config: Optional[bytes], model: Optional[bytes] = None) -> Path:
    model_dir = folder / "repo" / "mlp"
    (model_dir / "1").mkdir(parents=True)
    if config is not None:
        (model_dir / "config.pbtxt").write_bytes(config)
    (model_dir / "1" / "model.pt").write_bytes(goods.read(goods.pt) if model is None else model)
    return model_dir


GOOD_CONFIG = (b'name: "mlp"\nplatform: "pytorch_libtorch"\nmax_batch_size: 8\n'
               b'input [ { name: "x__0" data_type: TYPE_FP32 dims: [ 6 ] } ]\n'
               b'output [ { name: "output__0" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')


def _triton_cases() -> list[SurfaceCase]:
    out: list[SurfaceCase] = []

    def check(name, cls, config, message, model=None, kind="bad_artifact"):
        def build(folder, goods):
            model_dir = _repo_with(folder, goods, config, model if model is None else model(goods))
            return {"argv": ["triton", "--check", str(model_dir)]}

        out.append(SurfaceCase(f"triton --check: {name}", "triton", cls, kind, message, build))

    def export(name, cls, args, message, kind="bad_option", artifact=None):
        def build(folder, goods):
            a = goods.pt if artifact is None else _write(folder, "hostile.pt", artifact(goods))
            return {"argv": ["triton", str(a), "--repo", str(folder / "repo"), *[x.format(folder=folder) for x in args]]}

        out.append(SurfaceCase(f"triton: {name}", "triton", cls, kind, message, build))

    check("config.pbtxt missing", "malformed", None, "config.pbtxt")
    check("config.pbtxt binary junk", "malformed", bytes(range(256)) * 8, "config.pbtxt")
    check("config.pbtxt nested 100,000 deep", "memory", b"input " + b"[ {" * 100_000, "config.pbtxt")
    check("config.pbtxt dims 2^70", "option", GOOD_CONFIG.replace(b"dims: [ 6 ]", b"dims: [ 1180591620717411303424 ]"),
          "config.pbtxt")
    check("config.pbtxt names another model", "contract", GOOD_CONFIG.replace(b'"mlp"', b'"other"'), "config name 'other' differs from its folder 'mlp'")
    check("version's model.pt truncated", "malformed", GOOD_CONFIG, "model.pt", model=lambda g: g.read(g.pt)[:500])
    check("version's model.pt is a pickle exploit", "security", GOOD_CONFIG, "model.pt",
          model=lambda g: b"\x80\x02cos\nsystem\n(S'touch /tmp/tp-exploit'\ntR.")
    export("--version 2^63", "option", ["--version", str(2**63)], "version")
    export("--version 0", "option", ["--version", "0"], "version")
    export("--version -5", "option", ["--version", "-5"], "version")
    export("--max-batch-size 2^40", "option", ["--max-batch-size", str(2**40)], "max_batch_size")
    export("--max-batch-size -1", "option", ["--max-batch-size", "-1"], "max_batch_size")
    export("--instances 0", "option", ["--instances", "0"], "instances")
    export("--preferred-batch-size 2^40", "option", ["--preferred-batch-size", str(2**40)], "preferred")
    export("--max-queue-delay-us 2^70", "option", ["--max-queue-delay-us", str(2**70)], "queue")
    export("--name climbing out", "security", ["--name", "../escape"], "name")
    export("--name with a slash", "security", ["--name", "a/b"], "name")
    export("--repo is a regular file", "option", ["--repo", "{folder}/hostile.pt"], "repo",
           artifact=lambda g: g.read(g.pt))
    export("artifact truncated", "malformed", [], "hostile.pt", kind="bad_artifact", artifact=lambda g: g.read(g.pt)[:300])
    return out


# --- the Batcher ----------------------------------------------------------------------------------


def _batcher_cases() -> list[SurfaceCase]:
    import torch

    out: list[SurfaceCase] = []

    def submit(name, cls, make_args, message, kind="bad_input", options=None):
        def build(folder, goods):
            def call():
                from torchport.native import Batcher, NativeModel

                batcher = Batcher(NativeModel(goods.pt), **(options or {"max_batch": 8, "max_delay_ms": 20}))
                good = batcher.submit(torch.ones(1, 6))
                bad = batcher.submit(*make_args())
                try:
                    bad.result()
                finally:
                    # The other caller of the same batch still gets its answer.
                    assert good.result()[0].shape == (1, 3), "the good request of the batch lost its result"

            return {"call": call}

        out.append(SurfaceCase(f"batcher: {name}", "batcher", cls, kind, message, build))

    def opts(name, options, message):
        def build(folder, goods):
            def call():
                from torchport.native import Batcher, NativeModel

                Batcher(NativeModel(goods.pt), **options)

            return {"call": call}

        out.append(SurfaceCase(f"batcher: {name}", "batcher", "option", "bad_option", message, build))

    submit("float64 request", "contract", lambda: (torch.ones(1, 6, dtype=torch.float64),), "input 'x'")
    submit("request 1x7", "contract", lambda: (torch.ones(1, 7),), "input 'x'")
    submit("rank-3 request", "contract", lambda: (torch.ones(1, 6, 1),), "input 'x'")
    submit("a string", "contract", lambda: ("hello",), "input 'x': expected a torch.Tensor")
    submit("None", "contract", lambda: (None,), "input 'x': expected a tensor with a batch dimension, got none")
    submit("two tensors for one input", "contract", lambda: (torch.ones(1, 6), torch.ones(1, 6)), "takes 1 inputs, got 2")
    submit("a meta tensor", "contract", lambda: (torch.ones(1, 6, device="meta"),), "input 'x'")
    submit("expanded to 2e9 rows", "memory", lambda: (torch.ones(1, 6).expand(2_000_000_000, 6),), "a request must hold 1 to max_batch (8) rows, got 2000000000")
    opts("max_batch 0", {"max_batch": 0}, "max_batch")
    opts("max_queue 0", {"max_queue": 0}, "max_queue")
    opts("max_delay_ms -1", {"max_delay_ms": -1.0}, "max_delay_ms")
    opts("max_delay_ms infinite", {"max_delay_ms": float("inf")}, "max_delay_ms")
    return out


CASES: list[SurfaceCase] = (_pt2_cases() + _pte_cases() + _onnx_cases() + _image_cases() + _npz_cases() + _profile_cases()
                            + _triton_cases() + _batcher_cases())


def counts(by: str) -> dict[str, int]:
    """Cases per surface (`by="surface"`) or per class (`by="cls"`), as docs/reliability.md states them."""
    out: dict[str, int] = {}
    for case in CASES:
        out[getattr(case, by)] = out.get(getattr(case, by), 0) + 1
    return out
