"""PNG and JPEG files as inputs: decoded by the C++ runtime (stb_image) into the uint8
[1, H, W, 3] RGB tensor an application holds, the same for torchport-run and
`torchport run`, and bounded before anything is allocated."""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import torchport
from conftest import run_binary, run_cli
from torchport.native import read_tensor_file


class MeanColour(torch.nn.Module):
    """A model that takes pictures as applications hold them: uint8 [B, H, W, 3] RGB."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0  # [B, 3, H, W] in [0, 1]
        return torch.cat([x.mean(dim=(2, 3)), x[:, :, 0, 0]], dim=1)  # [B, 6]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "colour.pt"
    return torchport.export(MeanColour(), (torch.zeros(1, 8, 6, 3, dtype=torch.uint8),), path,
                            input_names=["image"])


def pictures(folder):
    """The same 6x8 picture as RGB, RGBA, grayscale and palette PNGs, written by PIL."""
    g = np.random.default_rng(0)
    rgb = g.integers(0, 256, size=(8, 6, 3), dtype=np.uint8)
    alpha = g.integers(0, 256, size=(8, 6, 1), dtype=np.uint8)
    images = {"rgb": Image.fromarray(rgb), "rgba": Image.fromarray(np.concatenate([rgb, alpha], axis=2)),
              "gray": Image.fromarray(rgb[:, :, 0]), "palette": Image.fromarray(rgb).quantize(16)}
    for name, im in images.items():
        im.save(folder / f"{name}.png")
    return [folder / f"{name}.png" for name in images]


def test_png_files_give_the_same_predictions_as_python_on_the_same_files(artifact, tmp_path):
    for png in pictures(tmp_path):
        with Image.open(png) as im:
            pixels = torch.from_numpy(np.asarray(im.convert("RGB")).copy())[None]  # [1, H, W, 3], as PIL decodes
        (decoded,) = read_tensor_file(png)
        assert decoded.dtype == torch.uint8 and torch.equal(decoded, pixels), png.name
        expected = MeanColour()(pixels)
        out = tmp_path / f"{png.stem}.out.pt"
        proc = run_binary("predict", str(artifact), "--input", str(png), "--output", str(out))
        assert proc.returncode == 0, proc.stderr
        assert torch.equal(torch.load(out), expected), png.name
        proc = run_cli("run", str(artifact), "--input", str(png), "--output", str(tmp_path / f"{png.stem}.py.pt"))
        assert proc.returncode == 0, proc.stderr
        assert torch.equal(torch.load(tmp_path / f"{png.stem}.py.pt"), expected), png.name


def test_a_jpeg_file_is_read_as_rgb(tmp_path):
    Image.fromarray(np.full((5, 7, 3), (200, 40, 90), dtype=np.uint8)).save(tmp_path / "a.jpg", quality=95)
    (decoded,) = read_tensor_file(tmp_path / "a.jpg")
    assert decoded.shape == (1, 5, 7, 3) and decoded.dtype == torch.uint8
    assert (decoded.float().mean(dim=(0, 1, 2)) - torch.tensor([200.0, 40.0, 90.0])).abs().max() < 4  # lossy


def png_header(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_a_wrong_size_or_a_broken_image_is_refused_by_name(artifact, tmp_path):
    Image.fromarray(np.zeros((9, 6, 3), dtype=np.uint8)).save(tmp_path / "tall.png")
    proc = run_binary("predict", str(artifact), "--input", str(tmp_path / "tall.png"), "--output", str(tmp_path / "o"))
    assert proc.returncode == 4 and re.search(r"image.*expected.*8.*got.*9", proc.stderr), proc.stderr
    good = (tmp_path / "ok.png")
    Image.fromarray(np.zeros((8, 6, 3), dtype=np.uint8)).save(good)
    cases = {"truncated.png": good.read_bytes()[:60], "huge.png": png_header(100_000, 100_000) + b"\0" * 64,
             "broken.jpg": b"\xff\xd8\xff\xe0" + b"\0" * 40}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        proc = run_binary("predict", str(artifact), "--input", str(tmp_path / name), "--output", str(tmp_path / "o"))
        assert proc.returncode == 4 and f"{name}' is not a readable PNG/JPEG image" in proc.stderr, (name, proc.stderr)
    assert not (tmp_path / "o").exists()


def _chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, length) of each chunk of a PNG."""
    out, at = [], 8
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        out.append((at, data[at + 4:at + 8], length))
        at += 12 + length
    return out


def _with_chunk(data: bytes, before: bytes, kind: bytes, body: bytes) -> bytes:
    at = next(a for a, k, _ in _chunks(data) if k == before)
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return data[:at] + chunk + data[at:]


def test_chunk_crcs_are_judged_as_pil_judges_them(tmp_path):
    # PIL refuses a bad CRC before the first IDAT and reads past one from IDAT on;
    # the runtime must refuse and decode the same files (decoding them alike).
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (8, 6, 3), dtype=np.uint8)).save(tmp_path / "ok.png")
    good = _with_chunk(_with_chunk((tmp_path / "ok.png").read_bytes(), b"IDAT", b"tEXt", b"k\0v"),
                       b"IEND", b"tIME", b"\x07\xe0\x01\x01\x00\x00\x00")
    assert [k for _, k, _ in _chunks(good)] == [b"IHDR", b"tEXt", b"IDAT", b"tIME", b"IEND"]
    outcomes = {}
    for at, kind, length in _chunks(good):
        bad = bytearray(good)
        bad[at + 8 + length:at + 12 + length] = b"\0\0\0\0"
        path = tmp_path / f"{kind.decode()}.png"
        path.write_bytes(bytes(bad))
        try:
            with Image.open(path) as im:
                expected = torch.from_numpy(np.asarray(im.convert("RGB")).copy())[None]
        except Exception:  # noqa: BLE001 - PIL's refusal, whatever its type
            expected = None
        if expected is None:
            with pytest.raises(torchport.BadInputError, match=rf"its {kind.decode()} chunk at byte {at} fails its CRC"):
                read_tensor_file(path)
        else:
            assert torch.equal(read_tensor_file(path)[0], expected), kind
        outcomes[kind] = expected is None
    assert outcomes == {b"IHDR": True, b"tEXt": True, b"IDAT": False, b"tIME": False, b"IEND": False}, outcomes
