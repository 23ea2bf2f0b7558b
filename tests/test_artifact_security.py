"""The artifact readers under attack: zip slip in every zip format, a .pt2 that
runs only with its torchport manifest (covered by the checksum), .pte programs
whose structure ExecuTorch's verifier accepts but its kernels would crash on,
and load/close cycles that leave nothing behind (fds, temporary folders).

One small MLP is compiled per session for each of .pt2 and .pte (Inductor's
cache, set in conftest, keeps the .pt2 quick on later runs)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import torchport
from conftest import MLP, run_binary
from torchport.formats import GOLDEN_FILE, MANIFEST_FILE, pack_pte
from torchport.manifest import payload_checksum

REPO = Path(__file__).resolve().parent.parent


def _in_child(statements: str, path) -> str:
    """What `statements` print in a child Python (sys.argv[1] is `path`), a
    torchport error printed as "Kind: message"; a signal fails the test."""
    body = "\n".join("    " + line for line in statements.splitlines())
    code = f"import sys, torchport\ntry:\n{body}\nexcept torchport.TorchportError as e:\n    print(type(e).__name__ + ': ' + str(e))\n"
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"signal or crash: rc {proc.returncode}\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="session")
def mlp_pt2(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return torchport.export(MLP().eval(), torch.randn(3, 6), tmp_path_factory.mktemp("sec") / "mlp.pt2", format="aoti")


@pytest.fixture(scope="session")
def mlp_ptes(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    model = MLP().eval()
    folder = tmp_path_factory.mktemp("sec_pte")
    return {d: torchport.export(model, torch.randn(3, 6), folder / f"mlp_{d}.pte", format="executorch", delegate=d)
            for d in ("xnnpack", "none")}


# --------------------------------------------------------------------- helpers
def _zip_records(path: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(path) as z:
        return [(info, z.read(info)) for info in z.infolist()]


def _rezip(records, extra=(), drop=()) -> bytes:
    """The records stored again (names as given), then `extra` (ZipInfo or name, bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for info, data in records:
            if not any(info.filename.endswith(d) for d in drop):
                z.writestr(zipfile.ZipInfo(info.filename), data)
        for info, data in extra:
            z.writestr(info, data)
    return buf.getvalue()


def _manifest_of(records) -> tuple[str, dict]:
    name = next(i.filename for i, _ in records if i.filename.endswith("/" + MANIFEST_FILE))
    return name, json.loads(next(d for i, d in records if i.filename == name))


def _with_manifest(records, change, reseal: bool) -> bytes:
    """The package with its manifest changed by `change(doc)`, and with `reseal` its checksum recomputed."""
    name, doc = _manifest_of(records)
    change(doc)
    rest = [(i, d) for i, d in records if i.filename != name]
    data = _rezip(rest, [(name, json.dumps(doc).encode())])
    if reseal:
        doc["checksum"] = payload_checksum(data)
        data = _rezip(rest, [(name, json.dumps(doc).encode())])
    return data


def _load_in_child(path: Path, tmpdir: Path, **options) -> subprocess.CompletedProcess:
    """Loads `path` in a fresh interpreter with TMPDIR=`tmpdir`; prints the error kind."""
    code = (
        "import sys, torchport\n"
        "try:\n"
        f"    torchport.NativeModel(sys.argv[1], **{options!r})\n"
        "    print('LOADED')\n"
        "except torchport.TorchportError as e:\n"
        "    print(type(e).__name__ + ': ' + str(e))\n"
    )
    env = dict(os.environ, TMPDIR=str(tmpdir))
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                          timeout=120)


def test_checksum_of_a_manifest_nested_100000_deep_is_refused_not_a_stack_overflow(mlp_pt2, tmp_path):
    # Computing a checksum parses the manifest before any load does (export, reseal):
    # that parse must be as bounded as the load's.
    records = _zip_records(mlp_pt2)
    name, _ = _manifest_of(records)
    rest = [(i, d) for i, d in records if i.filename != name]
    path = tmp_path / "deep.pt2"
    path.write_bytes(_rezip(rest, [(name, b'{"schema": 1, "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")]))
    out = _in_child("from torchport.manifest import payload_checksum\n"
                    "print(payload_checksum(open(sys.argv[1], 'rb').read()))", path)
    assert "BadArtifactError" in out and "nests more than 64 levels deep" in out, out


# -------------------------------------------------------------------- zip slip
def test_pt2_record_climbing_out_is_refused_and_writes_nothing(mlp_pt2, tmp_path):
    records = _zip_records(mlp_pt2)
    folder = records[0][0].filename.split("/", 1)[0]
    target = tmp_path / "escaped.txt"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    # Enough '..' to reach / from any extraction folder, then down to target.
    name = f"{folder}/data/aotinductor/model/" + "../" * 40 + str(target).lstrip("/")
    path = tmp_path / "slip.pt2"
    path.write_bytes(_rezip(records, [(name, b"written by an attacker")]))
    proc = _load_in_child(path, tmpdir)
    assert "BadArtifactError" in proc.stdout and "climbs out of its folder" in proc.stdout, proc.stdout + proc.stderr
    assert "data/aotinductor/model/../" in proc.stdout  # names the record
    assert not target.exists()
    assert list(tmpdir.iterdir()) == []
    cli = run_binary("info", str(path))
    assert cli.returncode == 3 and "climbs out of its folder" in cli.stderr and not target.exists()


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (0o120777 << 16)
    return info


@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
@pytest.mark.parametrize("name, phrase", [
    ("/etc/evil", "is an absolute path"),
    ("{f}/..\\..\\evil", "backslash"),
    ("{f}/data/./x", "'.' component"),
    ("{f}//x", "empty path component"),
    ("C:/evil", "drive letter"),
    ("{f}/bad\x01name", "control character"),
    ("link", "symbolic link"),
])
def test_hostile_record_names_are_refused_in_every_zip_format(fmt, name, phrase, mlp_pt2, mlp_artifact, tmp_path):
    source = mlp_pt2 if fmt == "pt2" else mlp_artifact[1]
    records = _zip_records(source)
    folder = records[0][0].filename.split("/", 1)[0]
    entry = _symlink(f"{folder}/data/link") if name == "link" else name.format(f=folder)
    path = tmp_path / f"hostile.{'pt2' if fmt == 'pt2' else 'pt'}"
    path.write_bytes(_rezip(records, [(entry, b"/etc/passwd")]))
    with pytest.raises(torchport.BadArtifactError, match=phrase) as info:
        torchport.NativeModel(path)
    assert str(path) in str(info.value)


def test_duplicate_and_mismatched_local_names_are_refused(mlp_pt2, tmp_path):
    records = _zip_records(mlp_pt2)
    dup = tmp_path / "dup.pt2"
    with pytest.warns(UserWarning, match="Duplicate name"):
        dup.write_bytes(_rezip(records, [(records[-1][0].filename, b"second copy")]))
    with pytest.raises(torchport.BadArtifactError, match="appears twice"):
        torchport.NativeModel(dup)
    # The local header names a climbing path while the directory names a safe one.
    data = bytearray(mlp_pt2.read_bytes())
    victim = records[-1][0]
    start = victim.header_offset + 30
    safe = victim.filename.encode()
    evil = (b"../" * len(safe))[: len(safe)]
    assert data[start:start + len(safe)] == safe
    data[start:start + len(safe)] = evil
    mismatch = tmp_path / "mismatch.pt2"
    mismatch.write_bytes(bytes(data))
    with pytest.raises(torchport.BadArtifactError, match="another name in its local header"):
        torchport.NativeModel(mismatch)


# -------------------------------------------- the .pt2 manifest and its checksum
def test_pt2_checksum_covers_the_manifest(mlp_pt2, tmp_path):
    m = torchport.read_manifest(mlp_pt2)
    assert m.checksum.startswith("xxh3-128+manifest:")
    records = _zip_records(mlp_pt2)

    def wider(doc):
        doc["inputs"][0]["shape"][-1] = 7

    edited = tmp_path / "edited.pt2"
    edited.write_bytes(_with_manifest(records, wider, reseal=False))
    with pytest.raises(torchport.BadArtifactError, match=r"edited\.pt2.*checksum mismatch"):
        torchport.NativeModel(edited)
    dropped = tmp_path / "dropped.pt2"
    dropped.write_bytes(_with_manifest(records, lambda doc: doc.pop("checksum"), reseal=False))
    with pytest.raises(torchport.BadArtifactError, match=r"dropped\.pt2.*records no checksum; a \.pt2 must carry one"):
        torchport.NativeModel(dropped)
    old = tmp_path / "old_scheme.pt2"
    old.write_bytes(_with_manifest(records, lambda doc: doc.update(checksum="xxh3-128:" + "0" * 32), reseal=False))
    with pytest.raises(torchport.BadArtifactError, match=r"checksum xxh3-128 does not cover the manifest"):
        torchport.NativeModel(old)


def test_pt2_without_torchport_records_is_refused(mlp_pt2, tmp_path):
    path = tmp_path / "plain.pt2"
    path.write_bytes(_rezip(_zip_records(mlp_pt2), drop=(MANIFEST_FILE, GOLDEN_FILE)))
    for options in ({}, {"verify_checksum": False}):
        with pytest.raises(torchport.BadArtifactError, match=r"plain\.pt2.*without torchport's records.*manifest\.json"):
            torchport.NativeModel(path, **options)
    proc = run_binary("info", str(path))
    assert proc.returncode == 3 and "without torchport's records" in proc.stderr


def test_pt2_manifest_must_agree_with_the_call_spec_and_state_shapes(mlp_pt2, tmp_path):
    records = _zip_records(mlp_pt2)

    def extra_output(doc):
        doc["outputs"].append(dict(doc["outputs"][0], name="extra"))

    # (A manifest without an input's dtype or shape is refused by the manifest's own rules.)
    for name, change, phrase in [("outputs.pt2", extra_output, "outputs but the package's call spec returns 1")]:
        path = tmp_path / name
        path.write_bytes(_with_manifest(records, change, reseal=True))  # a consistent, checksummed lie
        with pytest.raises(torchport.BadArtifactError, match=phrase):
            torchport.NativeModel(path)


def test_pt2_inputs_are_checked_against_a_resealed_manifest_before_kernels(mlp_pt2, tmp_path):
    # A manifest that lies about the width, resealed: the runtime checks inputs
    # against it and never hands AOTInductor a shape other than the stated one.
    records = _zip_records(mlp_pt2)
    path = tmp_path / "resealed.pt2"
    path.write_bytes(_with_manifest(records, lambda doc: None, reseal=True))
    model = torchport.NativeModel(path)
    with pytest.raises(torchport.BadInputError, match=r"input 'x'.*dim 1 expected 6, got 7"):
        model.run(torch.randn(2, 7))
    assert model.run(torch.randn(2, 6))[0].shape == (2, 3)


# -------------------------------------------------------------- .pte structure
def _pte_parts(path: Path) -> tuple[bytes, dict, bytes]:
    import struct

    data = path.read_bytes()
    p, m, g = struct.unpack("<QQQ", data[-24:])
    return data[:p], json.loads(data[p:p + m]), data[p + m:p + m + g]


def _resealed_pte(program: bytes, manifest: dict, golden: bytes) -> bytes:
    doc = dict(manifest)
    doc.pop("checksum", None)
    doc["checksum"] = payload_checksum(pack_pte(program, json.dumps(doc).encode(), golden))
    return pack_pte(program, json.dumps(doc).encode(), golden)


def _mutated_pte(path: Path, change) -> bytes:
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    program, manifest, golden = _pte_parts(path)
    pte = deserialize_pte_binary(program)
    change(pte.program.execution_plan[0])
    return _resealed_pte(bytes(serialize_pte_binary(pte, extract_delegate_segments=True)), manifest, golden)


def _first(plan, kind):
    from executorch.exir import schema

    for chain in plan.chains:
        for ins in chain.instructions:
            if isinstance(ins.instr_args, getattr(schema, kind)):
                return ins.instr_args
    raise AssertionError(f"no {kind} in the plan")


def test_pte_round_trip_through_the_mutator_still_loads(mlp_ptes, tmp_path):
    for delegate, src in mlp_ptes.items():
        path = tmp_path / f"same_{delegate}.pte"
        path.write_bytes(_mutated_pte(src, lambda plan: None))
        assert torchport.NativeModel(path).run(torch.randn(2, 6))[0].shape == (2, 3)


def _no_delegate_args(plan):
    _first(plan, "DelegateCall").args = []


def _int_as_tensor_arg(plan):
    from executorch.exir import schema

    call = _first(plan, "KernelCall")
    ints = [i for i, v in enumerate(plan.values) if isinstance(v.val, schema.Int)]
    call.args[0] = ints[0]  # the kernel's first argument is a tensor


def _arg_out_of_range(plan):
    _first(plan, "KernelCall").args[0] = len(plan.values) + 5


def _constant_on_empty_buffer(plan):
    from executorch.exir import schema

    io_values = set(plan.inputs) | set(plan.outputs)
    for i, v in enumerate(plan.values):
        if isinstance(v.val, schema.Tensor) and v.val.allocation_info is None and i not in io_values \
                and v.val.data_buffer_idx > 0:
            v.val.data_buffer_idx = 0
            return
    raise AssertionError("no constant tensor")


def _huge_plan(plan):
    plan.non_const_buffer_sizes = list(plan.non_const_buffer_sizes) + [3 << 30]


def _operator_without_name(plan):
    plan.operators[0].name = None  # ExecuTorch 1.5.1 loads the method anyway: SIGSEGV at the first run


def _int_list_holding_a_tensor(plan):
    from executorch.exir import schema

    ints = next(v.val for v in plan.values if isinstance(v.val, schema.IntList))
    ints.items[0] = plan.inputs[0]  # ExecuTorch's to<int64_t>() aborts on it: SIGABRT


@pytest.mark.parametrize("delegate, change, phrase", [
    ("xnnpack", _no_delegate_args, "delegate call without arguments"),
    ("none", _int_as_tensor_arg, "passes a int as argument 0 of aten::"),
    ("none", _arg_out_of_range, "refers to value"),
    ("none", _constant_on_empty_buffer, "points at the empty buffer"),
    ("none", _huge_plan, "memory plan needs more than 2147483648 bytes"),
    ("none", _operator_without_name, "has no name"),
    ("none", _int_list_holding_a_tensor, "which is not an int (it is a tensor)"),
])
def test_pte_structure_exeutorch_would_crash_on_is_refused(delegate, change, phrase, mlp_ptes, tmp_path):
    path = tmp_path / f"{change.__name__}.pte"
    path.write_bytes(_mutated_pte(mlp_ptes[delegate], change))
    out = _in_child("import torch\ntorchport.NativeModel(sys.argv[1]).run(torch.randn(2, 6))\nprint('RAN')", path)
    assert "BadArtifactError" in out and phrase in out and path.name in out, out
    cli = run_binary("info", str(path))
    assert cli.returncode in (0, 3), cli.stderr  # info reads the manifest; it does not load the program


def test_pte_without_checksum_is_refused(mlp_ptes, tmp_path):
    program, manifest, golden = _pte_parts(mlp_ptes["none"])
    manifest.pop("checksum")
    path = tmp_path / "nosum.pte"
    path.write_bytes(pack_pte(program, json.dumps(manifest).encode(), golden))
    with pytest.raises(torchport.BadArtifactError, match=r"records no checksum; a \.pte must carry one"):
        torchport.NativeModel(path)
    bare = tmp_path / "bare.pte"
    bare.write_bytes(program)
    with pytest.raises(torchport.BadArtifactError, match="bare ExecuTorch program without torchport's manifest"):
        torchport.NativeModel(bare)
    assert torchport.NativeModel(bare, verify_checksum=False).run(torch.randn(2, 6))[0].shape == (2, 3)


# ------------------------------------------------------------------------ leaks
SOAK = """
import os, sys, resource, torch, torchport
path, n = sys.argv[1], int(sys.argv[2])
tmp = os.environ["TMPDIR"]
def fds(): return len(os.listdir("/proc/self/fd"))
def rss(): return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
x = torch.randn(2, 6)
for _ in range(3): torchport.NativeModel(path).run(x)
f0, r0 = fds(), rss()
for _ in range(n):
    m = torchport.NativeModel(path); m.run(x); del m
print(fds() - f0, rss() - r0, len(os.listdir(tmp)))
"""


@pytest.mark.parametrize("fmt", ["pt2", "pte"])
def test_load_close_cycles_leave_no_fd_or_folder(fmt, mlp_pt2, mlp_ptes, tmp_path):
    path = mlp_pt2 if fmt == "pt2" else mlp_ptes["xnnpack"]
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = subprocess.run([sys.executable, "-c", SOAK, str(path), "50"], capture_output=True, text=True,
                          env=dict(os.environ, TMPDIR=str(tmpdir)), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fds, rss, folders = (int(v) for v in proc.stdout.split()[-3:])
    assert fds == 0 and folders == 0, proc.stdout
    assert rss < 64 << 20, f"RSS grew {rss} bytes over 50 cycles"  # loose: the soak in benchmarks/ measures it


def test_failed_pt2_load_leaves_no_folder(mlp_pt2, tmp_path):
    records = _zip_records(mlp_pt2)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    # Valid records, but the library inside is junk: the loader fails after extracting.
    broken = [(i, b"\x7fELF junk" if i.filename.endswith(".so") else d) for i, d in records]
    path = tmp_path / "broken.pt2"
    path.write_bytes(_with_manifest(broken, lambda doc: None, reseal=True))
    proc = _load_in_child(path, tmpdir)
    assert "BadArtifactError" in proc.stdout, proc.stdout + proc.stderr
    assert list(tmpdir.iterdir()) == []


# ------------------------------------------------------------------------- fuzz
@pytest.mark.parametrize("fmt", ["pt2", "pte"])
def test_structure_aware_fuzz_ends_in_errors_or_runs(fmt, mlp_pt2, mlp_ptes, tmp_path):
    path = mlp_pt2 if fmt == "pt2" else mlp_ptes["none"]
    log = tmp_path / "fuzz.log"
    here = Path(__file__).resolve().parent
    cmd = [sys.executable, str(here / "artifact_fuzz_worker.py"), str(path), str(log), "--cases", "300"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600, cwd=here)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"fuzzing hung; last case: {log.read_text().splitlines()[-1:]}") from None
    last = log.read_text().splitlines()[-1:] if log.exists() else []
    assert proc.returncode == 0, f"crash (rc {proc.returncode}) at case {last}: {proc.stderr[-2000:]}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["internal"] == [], summary
    counts = summary["counts"]
    assert not any(k.startswith("raw ") for k in counts), counts
    assert sum(counts.values()) == 300 and counts.get("unbuildable", 0) < 30, counts
    print(fmt, counts)


def _external(proto, tensor, location: str) -> None:
    """`tensor` (a TensorProto inside `proto`) pointing its data at another file."""
    from onnx import TensorProto

    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    tensor.external_data.add(key="location", value=location)


def test_an_onnx_tensor_kept_in_another_file_is_refused_before_onnxruntime_reads_it(tmp_path, monkeypatch):
    # ONNX Runtime reads an external-data path relative to the working directory for
    # a model loaded from bytes: a hostile model could read a file there as weights.
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from torchport.formats import onnxruntime_session

    torch.manual_seed(0)
    good = torchport.export(torch.nn.Linear(6, 3).eval(), torch.randn(2, 6), tmp_path / "good.onnx", format="onnx")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.bin").write_bytes(torch.arange(18, dtype=torch.float32).numpy().tobytes())
    initializer = onnx.load(str(good))
    _external(initializer, initializer.graph.initializer[0], "secret.bin")
    constant = onnx.load(str(good))  # the same weight as a Constant node's tensor attribute
    weight = constant.graph.initializer[0]
    node = onnx.helper.make_node("Constant", [], [weight.name + "_c"], value=onnx.TensorProto.FromString(
        weight.SerializeToString()))
    _external(constant, node.attribute[0].t, "secret.bin")
    constant.graph.node.insert(0, node)
    for name, proto in {"initializer": initializer, "constant": constant}.items():
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(proto.SerializeToString())
        phrase = rf"{name}\.onnx'.*tensor '{weight.name}' keeps its data in another file \('secret\.bin'\)"
        with pytest.raises(torchport.BadArtifactError, match=phrase):
            torchport.NativeModel(path)
        with pytest.raises(torchport.BadArtifactError, match=phrase):
            torchport.read_manifest(path)
        with pytest.raises(torchport.BadArtifactError, match=phrase):  # verify's onnxruntime row
            onnxruntime_session(path)
        proc = run_binary("info", str(path))
        assert proc.returncode == 3 and "keeps its data in another file" in proc.stderr, proc.stderr
