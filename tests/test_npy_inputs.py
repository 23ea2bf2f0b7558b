"""NumPy .npy arrays as input files: torchport-run predict, torchport run and verify read
them through the runtime's one reader; broken or hostile arrays are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchport
from conftest import run_binary, run_cli
from torchport.errors import BadInputError
from torchport.native import read_tensor_file


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("npy")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    return torchport.export(model, torch.rand(2, 4), d / "m.pt", metadata={}, overwrite=True)


def test_an_npy_array_is_an_input_file_for_every_runtime(artifact, tmp_path):
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    torch.save(torch.from_numpy(x), tmp_path / "x.pt")
    (from_npy,) = read_tensor_file(tmp_path / "x.npy")
    assert torch.equal(from_npy, torch.from_numpy(x))
    for name in ("x.npy", "x.pt"):
        proc = run_binary("predict", str(artifact), "--input", str(tmp_path / name), "--output", str(tmp_path / f"{name}.out"))
        assert proc.returncode == 0, proc.stderr
    assert torch.equal(torch.load(tmp_path / "x.npy.out"), torch.load(tmp_path / "x.pt.out"))
    proc = run_cli("run", str(artifact), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "py.out"))
    assert proc.returncode == 0, proc.stderr
    assert torch.equal(torch.load(tmp_path / "py.out"), torch.load(tmp_path / "x.pt.out"))
    proc = run_cli("verify", str(artifact), "--inputs", str(tmp_path / "x.npy"))
    assert proc.returncode == 0 and "result: bit-exact" in proc.stdout, proc.stdout + proc.stderr


def npy(header: str, data: bytes = b"", version: int = 1) -> bytes:
    h = header.encode()
    if version == 1:
        return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + data
    return b"\x93NUMPY" + bytes([version, 0]) + len(h).to_bytes(4, "little") + h + data


HOSTILE = {
    "truncated data": (npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", b"\0" * 12),
                       "needs 32 bytes of data, the file holds 12"),
    "extra data": (npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, ), }", b"\0" * 8),
                   "needs 4 bytes of data, the file holds 8"),
    "object array": (npy("{'descr': '|O', 'fortran_order': False, 'shape': (1, ), }", b"\0" * 8), "dtype '|O'"),
    "big-endian": (npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1, ), }", b"\0" * 4), "dtype '>f4'"),
    "fortran order": (npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1, ), }", b"\0" * 4), "Fortran order"),
    "overflowing shape": (npy("{'descr': '<f8', 'fortran_order': False, 'shape': (281474976710656, 281474976710656, 281474976710656), }"),
                          "overflows"),
    "huge dimension": (npy("{'descr': '<f4', 'fortran_order': False, 'shape': (9999999999999999999, ), }"),
                       "larger than"),
    "header past the end": (b"\x93NUMPY\x02\x00" + (1000).to_bytes(4, "little") + b"{}", "declares 1000 bytes"),
    "huge header": (b"\x93NUMPY\x02\x00" + (1 << 30).to_bytes(4, "little"), "more than the limit of 65536"),
    "unknown version": (b"\x93NUMPY\x09\x00" + b"\0" * 8, "format version 9"),
    "no shape": (npy("{'descr': '<f4', 'fortran_order': False, }"), "no 'shape'"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_broken_or_hostile_npy_files_are_refused_by_name(tmp_path, case):
    data, message = HOSTILE[case]
    path = tmp_path / "bad.npy"
    path.write_bytes(data)
    with pytest.raises(BadInputError, match=rf"input file '.*bad.npy' is not a readable \.npy array: .*{message}"):
        read_tensor_file(path)


def test_an_image_file_is_named_as_such(artifact, tmp_path):
    (tmp_path / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    proc = run_binary("predict", str(artifact), "--input", str(tmp_path / "cat.png"), "--output", str(tmp_path / "o"))
    assert proc.returncode == 4 and "cat.png' is not a readable PNG/JPEG image" in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    class Two(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x * 2 + y

    d = tmp_path_factory.mktemp("npz")
    return torchport.export(Two(), (torch.rand(2, 3), torch.rand(2, 3)), d / "two.pt", overwrite=True)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "deflated"])
def test_an_npz_archive_gives_inputs_by_name_or_by_position(two_inputs, tmp_path, save):
    g = np.random.default_rng(1)
    x, y = g.random((4, 3), dtype=np.float32), g.random((4, 3), dtype=np.float32)
    expected = torch.from_numpy(x) * 2 + torch.from_numpy(y)
    save(tmp_path / "named.npz", y=y, x=x)  # by input name, in any order
    save(tmp_path / "positional.npz", x, y)  # arr_0, arr_1: forward's order
    named = read_tensor_file(tmp_path / "named.npz")
    assert torch.equal(named["x"], torch.from_numpy(x)) and torch.equal(named["y"], torch.from_numpy(y))
    for name in ("named.npz", "positional.npz"):
        out = tmp_path / f"{name}.out"
        proc = run_binary("predict", str(two_inputs), "--input", str(tmp_path / name), "--output", str(out))
        assert proc.returncode == 0, proc.stderr
        assert torch.equal(torch.load(out), expected), name
    if save is np.savez:  # `torchport run` reads through the same C++ reader; once is enough
        proc = run_cli("run", str(two_inputs), "--input", str(tmp_path / "named.npz"), "--output", str(tmp_path / "py.out"))
        assert proc.returncode == 0, proc.stderr
        assert torch.equal(torch.load(tmp_path / "py.out"), expected)


def npz_of(members: dict[str, bytes], compress: bool = False) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


ARRAY = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }", b"\0" * 12)


def _damaged_crc() -> bytes:
    data = bytearray(npz_of({"x.npy": ARRAY}))
    data[bytes(data).find(ARRAY) + len(ARRAY) - 1] ^= 0xFF  # the last byte of the member's data
    return bytes(data)


def _bomb() -> bytes:
    # A deflated member that declares 12 bytes but inflates to 1 MiB.
    import zlib

    payload = ARRAY[:-12] + b"\0" * (1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = comp.compress(payload) + comp.flush()
    good = npz_of({"x.npy": ARRAY}, compress=True)
    import zipfile
    import io

    info = zipfile.ZipFile(io.BytesIO(good)).infolist()[0]
    start = info.header_offset + 30 + len(info.filename)
    data = good[:start] + raw + good[start + info.compress_size:]
    # fix the compressed size in the local header and the central directory
    import struct

    data = bytearray(data)
    struct.pack_into("<I", data, info.header_offset + 18, len(raw))
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 20, len(raw))
    struct.pack_into("<I", data, cd + 42, info.header_offset)
    eocd = data.rfind(b"PK\x05\x06")
    struct.pack_into("<I", data, eocd + 16, cd)
    return bytes(data)


HOSTILE_NPZ = {
    "not an array": (lambda: npz_of({"x.npy": ARRAY, "notes.txt": b"hello"}), r"member 'notes.txt' is not a \.npy"),
    "mixed": (lambda: npz_of({"arr_0.npy": ARRAY, "x.npy": ARRAY}), "mixes positional arrays"),
    "gap": (lambda: npz_of({"arr_0.npy": ARRAY, "arr_2.npy": ARRAY}), "has arr_2 but no arr_1"),
    "bad member": (lambda: npz_of({"x.npy": ARRAY[:-4]}), r"member 'x.npy' is not a readable \.npy array"),
    "damaged": (_damaged_crc, "CRC-32 does not match"),
    "inflates beyond its size": (_bomb, "does not inflate to the 81 bytes it declares"),
    "truncated": (lambda: npz_of({"x.npy": ARRAY})[:-30], "not a valid zip archive"),
}


@pytest.mark.parametrize("case", list(HOSTILE_NPZ))
def test_broken_or_hostile_npz_files_are_refused_by_name(tmp_path, case):
    make, message = HOSTILE_NPZ[case]
    path = tmp_path / "bad.npz"
    path.write_bytes(make())
    with pytest.raises(BadInputError, match=rf"input file '.*bad.npz'.*{message}"):
        read_tensor_file(path)
