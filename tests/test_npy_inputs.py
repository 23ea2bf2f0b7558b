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
