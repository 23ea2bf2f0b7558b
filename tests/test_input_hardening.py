"""Input files, writers and the Batcher against hostile input (issue 23): images
checked before stb decodes them, .npy/.npz headers and deflated members bounded
before anything is allocated, CSV cells parsed as training parses them, outputs
that are not regular files never replaced, and Batcher faults that leave every
other caller with a result or a clean error. Through the binding, torchport-run
and `torchport run`."""

from __future__ import annotations

import io
import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import torchport
from conftest import run_binary, run_cli
from hostile_inputs import (jpeg_of, npy_with_header, npz_deflated, png_file, png_of, with_dht, with_frame)
from torchport.errors import BadInputError, BadOptionError, ModelRuntimeError
from torchport.native import Batcher, NativeModel, load_native, read_tensor_file


class Mean(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32).mean(dim=tuple(range(1, x.dim()))).unsqueeze(1)  # [B, 1]


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    return torchport.export(Mean(), (torch.zeros(1, 16, 24, 3, dtype=torch.uint8),),
                            tmp_path_factory.mktemp("hard") / "mean.pt", input_names=["image"])


def refused_everywhere(artifact, path, message, tmp_path, code=4):
    """The same refusal from the binding, torchport-run and `torchport run`, and nothing written."""
    with pytest.raises(BadInputError, match=message):
        read_tensor_file(path)
    out = tmp_path / "out.pt"
    proc = run_binary("predict", str(artifact), "--input", str(path), "--output", str(out))
    assert proc.returncode == code and re.search(message, proc.stderr), proc.stderr
    assert path.name in proc.stderr and "internal error" not in proc.stderr
    proc = run_cli("run", str(artifact), "--input", str(path), "--output", str(out))
    assert proc.returncode == code and re.search(message, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


# --- images -------------------------------------------------------------------

HOSTILE_IMAGES = {
    # Debian's stb 2.27 writes past its arrays for these (6 crashes in 400 mutations before).
    "huffman_510_codes": (lambda: with_dht(jpeg_of(), [0] * 14 + [255, 255]), r"declares 510 codes, more than the 256"),
    "huffman_257_ac_codes": (lambda: with_dht(jpeg_of(), [0] * 13 + [2, 255, 0], table=0x11), r"declares 257 codes"),
    "huffman_not_a_prefix_code": (lambda: with_dht(jpeg_of(), [3] + [0] * 15), r"do not form a prefix code"),
    "jpeg_422": (lambda: jpeg_of(subsampling=1), r"chroma subsampling \(2x1, 1x1, 1x1\) is not 4:4:4 or 4:2:0"),
    "jpeg_cmyk": (lambda: jpeg_of("CMYK"), r"4 colour components"),
    "jpeg_12_bit": (lambda: with_frame(jpeg_of(), precision=12), r"12-bit samples"),
    "jpeg_arithmetic": (lambda: with_frame(jpeg_of(), marker=0xC9), r"frame kind \(marker 0xFFC9"),
    "jpeg_side_over_cap": (lambda: with_frame(jpeg_of(), height=60000, width=60000),
                           r"declares 60000x60000 pixels; each side must be 1 to 16384"),
    "jpeg_bomb_tiny_file": (lambda: with_frame(jpeg_of(), height=4000, width=16000),
                            r"cannot hold the \d+ blocks its 16000x4000 header declares"),
    "png_16_bit": (lambda: png_of(np.zeros((16, 24, 1), dtype=np.uint16) + 4000, 16, 0), r"16-bit PNG"),
    "png_16_bit_interlaced_bomb": (lambda: png_file(16384, 4096, 16, 6, zlib.compress(b"\0" * 100_000), interlace=1),
                                   r"16-bit PNG"),
    "png_inflates_past_its_header": (lambda: png_file(64, 64, 8, 0, zlib.compress(b"\0" * 20_000_000)),
                                     r"inflate to more than the 4160 bytes its 64x64 header needs"),
    "png_side_over_cap": (lambda: png_file(20000, 10, 8, 2, zlib.compress(b"")),
                          r"declares 20000x10 pixels; each side must be 1 to 16384"),
    "png_pixels_over_cap": (lambda: png_file(16384, 16384, 8, 2, zlib.compress(b"")),
                            r"declares 16384x16384 pixels, more than the limit of 67108864"),
    "png_bad_colour_type": (lambda: png_file(4, 4, 8, 5, zlib.compress(b"")), r"colour type 5"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_IMAGES))
def test_a_hostile_image_is_refused_before_decoding(image_model, tmp_path, name):
    build, message = HOSTILE_IMAGES[name]
    path = tmp_path / f"{name}.img"
    path.write_bytes(build())
    refused_everywhere(image_model, path, message, tmp_path)


def pil_rgb(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy())[None]  # [1, H, W, 3]


def _samples(depth, channels, seed=0):
    return np.random.default_rng(seed).integers(0, 2 ** depth, size=(9, 13, channels))


EXACT_PNGS = {
    **{f"gray_{d}bit": (lambda d=d: png_of(_samples(d, 1), d, 0)) for d in (1, 2, 4, 8)},
    **{f"palette_{d}bit": (lambda d=d: png_of(_samples(d, 1), d, 3, extra=[(b"PLTE", bytes((i * 37) % 256 for i in range(3 * 2 ** d)))]))
       for d in (1, 2, 4, 8)},
    "palette_with_transparency": lambda: png_of(_samples(4, 1), 4, 3, extra=[(b"PLTE", bytes(range(48))), (b"tRNS", bytes([0, 128, 255]))]),
    "gray_alpha": lambda: png_of(_samples(8, 2), 8, 4),
    "rgba": lambda: png_of(_samples(8, 4), 8, 6),
    "rgb_interlaced": lambda: png_of(_samples(8, 3), 8, 2, interlace=1),
    "gray_2bit_interlaced": lambda: png_of(_samples(2, 1), 2, 0, interlace=1),
    "gray_with_transparency": lambda: png_of(_samples(8, 1), 8, 0, extra=[(b"tRNS", b"\x00\x07")]),
}


@pytest.mark.parametrize("name", sorted(EXACT_PNGS))
def test_8_bit_pngs_of_every_kind_decode_to_pils_bytes(tmp_path, name):
    data = EXACT_PNGS[name]()
    path = tmp_path / f"{name}.png"
    path.write_bytes(data)
    (decoded,) = read_tensor_file(path)
    expected = pil_rgb(data)
    assert decoded.dtype == torch.uint8 and decoded.shape == expected.shape
    assert torch.equal(decoded, expected), f"{name}: {(decoded.int() - expected.int()).abs().max()} levels off PIL"


@pytest.mark.parametrize("kind", ["444", "420", "420_progressive", "gray"])
def test_accepted_jpeg_kinds_decode_within_the_documented_levels_of_pil(tmp_path, kind):
    data = {"444": lambda: jpeg_of(subsampling=0), "420": lambda: jpeg_of(subsampling=2),
            "420_progressive": lambda: jpeg_of(subsampling=2, progressive=True), "gray": lambda: jpeg_of("L")}[kind]()
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    (decoded,) = read_tensor_file(path)
    diff = (decoded.int() - pil_rgb(data).int()).abs().max().item()
    assert diff <= JPEG_LEVELS, f"{kind}: {diff} levels from PIL"


JPEG_LEVELS = 12  # docs/runtime.md states it: JPEG decoders' IDCT and upsampling round differently


# --- .npy / .npz ------------------------------------------------------------------

NPY_CASES = {
    "repeated_shape_key": (lambda: npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
                                                   "'shape': (1,), }", b"\0" * 8), r"repeats the key 'shape'"),
    "repeated_descr_key_other_quotes": (lambda: npy_with_header("{'descr': '<f4', \"descr\": '<f8', 'fortran_order': "
                                                                "False, 'shape': (1,), }", b"\0" * 4),
                                        r"repeats the key 'descr'"),
    "strides_overflow_empty": (lambda: npy_with_header("{'descr': '<f8', 'fortran_order': False, "
                                                       "'shape': (0, 281474976710656, 281474976710656), }"),
                               r"byte size or strides overflow 64 bits"),
    "bytes_overflow": (lambda: npy_with_header("{'descr': '<f8', 'fortran_order': False, "
                                               "'shape': (4294967296, 4294967296), }"),
                       r"overflow 64 bits"),
}


@pytest.mark.parametrize("name", sorted(NPY_CASES))
def test_npy_headers_numpy_would_read_otherwise_are_refused(image_model, tmp_path, name):
    build, message = NPY_CASES[name]
    path = tmp_path / f"{name}.npy"
    path.write_bytes(build())
    refused_everywhere(image_model, path, message, tmp_path)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


NPZ_CASES = {
    "declares_more_than_deflate_can_make": (lambda: npz_deflated("arr_0.npy", _npy(np.zeros(10, np.float32)),
                                                                 declared=200_000_000),
                                            r"declares 200000000 inflated bytes from \d+ compressed bytes, more than "
                                            r"deflate can produce"),
    "header_needs_another_size": (lambda: npz_deflated("arr_0.npy", _npy(np.zeros(10, np.float32)), declared=5_000),
                                  r"its .npy header needs 168 bytes, the member declares 5000"),
    "deflated_bomb_with_a_lying_header": (lambda: npz_deflated("x.npy", npy_with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", b"\0" * 50_000_000)),
        r"its .npy header needs \d+ bytes, the member declares 50000\d\d\d"),
    "deflated_member_with_a_repeated_key": (lambda: npz_deflated("x.npy", npy_with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'shape': (1,), }", b"\0" * 4)),
        r"repeats the key 'shape'"),
}


@pytest.mark.parametrize("name", sorted(NPZ_CASES))
def test_deflated_npz_members_are_bounded_before_inflating(image_model, tmp_path, name):
    build, message = NPZ_CASES[name]
    path = tmp_path / f"{name}.npz"
    path.write_bytes(build())
    refused_everywhere(image_model, path, message, tmp_path)


def test_a_compressed_npz_still_reads_as_numpy_wrote_it(tmp_path):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.savez_compressed(tmp_path / "a.npz", a)
    (got,) = read_tensor_file(tmp_path / "a.npz")
    assert torch.equal(got, torch.from_numpy(a))


# --- CSV cells as training parses them ----------------------------------------------


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tab")
    return torchport.export(torch.nn.Linear(3, 1), (torch.zeros(2, 3),), tmp / "tab.pt",
                            features=[{"name": "x"}, {"name": "c", "type": "categorical", "vocabulary": ["a", "b"]}])


@pytest.mark.parametrize("cell", ["1_000", "1_0.2_5", "1e1_0", "\u00a012.5\u3000", "\u2003-3\u2009", "+7",
                                  "\x1c4\x1f", ".5", "5."])
def test_numeric_cells_python_float_reads_are_read_the_same(tabular, tmp_path, cell):
    path = tmp_path / "rows.csv"
    path.write_text(f"x,c\n{cell},a\n", encoding="utf-8")
    (got,) = read_tensor_file(path, tabular)
    assert got.tolist() == [[float(np.float32(float(cell.strip()))), 1.0, 0.0]], repr(cell)


@pytest.mark.parametrize("cell", ["1__0", "_1", "1_", "1_.5", "+-1", "\u0663", "\uff11", "1\u200b"])
def test_numeric_cells_training_refuses_are_refused(tabular, tmp_path, cell):
    from torchport.data import _number

    assert _number(cell.strip()) is None, repr(cell)  # training: not a number (the column would be categorical)
    path = tmp_path / "rows.csv"
    path.write_text(f"x,c\n{cell},a\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"line 2, column 'x': holds .*expected a number"):
        read_tensor_file(path, tabular)


def test_categories_are_stripped_of_unicode_spaces_as_training_strips_them(tabular, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("x,c\n1,\u3000b\u00a0\n2, a\u2028\n", encoding="utf-8")
    (got,) = read_tensor_file(path, tabular)
    assert got.tolist() == [[1.0, 0.0, 1.0], [2.0, 1.0, 0.0]]


def test_csv_rows_times_one_hot_width_are_bounded_before_allocating(tmp_path):
    vocab = [f"v{i}" for i in range(20_000)]
    artifact = torchport.export(torch.nn.Linear(20_001, 1), (torch.zeros(2, 20_001),), tmp_path / "wide.pt",
                                features=[{"name": "x"}, {"name": "c", "type": "categorical", "vocabulary": vocab}])
    path = tmp_path / "rows.csv"
    path.write_text("x,c\n" + "1,v3\n" * 3_400)
    proc = run_binary("predict", str(artifact), "--input", str(path), "--output", str(tmp_path / "o.pt"))
    assert proc.returncode == 4, proc.stderr
    assert re.search(r"encodes to more than the limit of 67108864 values \(3356 rows so far x 20001", proc.stderr)


# --- writers ------------------------------------------------------------------------


def _special(tmp_path, kind):
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    elif kind == "directory":
        path.mkdir()
    elif kind == "char_device":
        if os.geteuid() != 0:
            pytest.skip("mknod of a character device needs root")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null
    elif kind == "link_to_fifo":
        os.mkfifo(tmp_path / "real_fifo")
        path.symlink_to(tmp_path / "real_fifo")
    return path


KINDS = {"fifo": "a FIFO (named pipe)", "socket": "a socket", "directory": "a directory", "char_device": "a character device",
         "link_to_fifo": "a FIFO (named pipe)"}


def _kind_of(path):
    return stat.S_IFMT(os.stat(path).st_mode), os.stat(path).st_ino


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_output_that_is_not_a_regular_file_is_refused_and_kept(image_model, tmp_path, kind):
    target = _special(tmp_path, kind)
    before = _kind_of(target)
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((16, 24, 3), dtype=np.uint8)).save(image)
    message = f"output file '{target}' is {KINDS[kind]}; torchport writes only regular files"
    proc = run_binary("predict", str(image_model), "--input", str(image), "--output", str(target))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    proc = run_cli("run", str(image_model), "--input", str(image), "--output", str(target))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    with pytest.raises(BadOptionError, match=re.escape(message)):
        load_native().write_file(str(target), b"x", overwrite=True)
    assert _kind_of(target) == before  # never replaced by a regular file
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".torchport-")]


def test_a_regular_output_is_still_replaced(image_model, tmp_path):
    out = tmp_path / "o.pt"
    out.write_bytes(b"old")
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((16, 24, 3), dtype=np.uint8)).save(image)
    proc = run_binary("predict", str(image_model), "--input", str(image), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert torch.load(out).shape == (1, 1)


# --- the Batcher ---------------------------------------------------------------------


class Rows(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 + 1.0  # [B, 4]


@pytest.fixture(scope="module")
def rows_model(tmp_path_factory):
    return torchport.export(Rows(), (torch.zeros(2, 4),), tmp_path_factory.mktemp("rows") / "rows.pt")


def test_refilling_the_buffer_after_submit_does_not_change_the_answer(rows_model):
    model = NativeModel(rows_model)
    batcher = Batcher(model, max_batch=8, max_delay_ms=200)
    buffer = torch.ones(1, 4)
    future = batcher.submit(buffer)
    buffer.fill_(100.0)  # refilled while the request waits for others
    (got,) = future.result()
    assert torch.equal(got, torch.full((1, 4), 3.0))
    a = np.ones((1, 4), np.float32)  # a NumPy buffer, shared through DLPack
    future = batcher.submit(a)
    a[:] = -5
    assert torch.equal(future.result()[0], torch.full((1, 4), 3.0))


@pytest.mark.parametrize(("options", "message"), [
    ({"max_batch": 2 ** 40}, r"max_batch: expected 1 to 4096, got 1099511627776"),
    ({"max_queue": 2 ** 70}, r"max_queue: expected 1 to 1000000, got 1180591620717411303424"),
    ({"max_batch": True}, r"max_batch: expected an integer"),
    ({"max_batch": 2.5}, r"max_batch: expected an integer"),
    ({"max_delay_ms": float("nan")}, r"max_delay_ms: expected 0 to 10000, got nan"),
    ({"max_delay_ms": 10 ** 400}, r"max_delay_ms: expected 0 to 10000, got 1000"),
    ({"max_delay_ms": "2"}, r"max_delay_ms: expected a number, got <class 'str'>"),
])
def test_batcher_options_out_of_range_are_bad_options(rows_model, options, message):
    with pytest.raises(BadOptionError, match=message):
        Batcher(NativeModel(rows_model), **options)


def test_abandoned_futures_leave_every_other_caller_its_result(rows_model):
    batcher = Batcher(NativeModel(rows_model), max_batch=8, max_delay_ms=50)
    for i in range(20):
        batcher.submit(torch.full((1, 4), float(i)))  # futures dropped at once
    kept = [(i, batcher.submit(torch.full((1, 4), float(i)))) for i in range(20)]
    for i, f in kept:
        assert torch.equal(f.result()[0], torch.full((1, 4), 2.0 * i + 1.0))


def test_a_bad_request_in_a_batch_fails_alone(rows_model):
    batcher = Batcher(NativeModel(rows_model), max_batch=8, max_delay_ms=200)
    good = batcher.submit(torch.ones(1, 4))
    bad = batcher.submit(torch.ones(1, 5))  # wrong width: the batched call fails, then it alone
    assert torch.equal(good.result()[0], torch.full((1, 4), 3.0))
    with pytest.raises(BadInputError, match=r"input 'x'.*expected 4, got 5"):
        bad.result()


WORKER = textwrap.dedent("""
    import sys, threading, time, torch
    import torchport
    from torchport.native import Batcher, NativeModel
    model = NativeModel(sys.argv[1])
    mode = sys.argv[2]
    batcher = Batcher(model, max_batch=int(sys.argv[4]), max_delay_ms=float(sys.argv[3]), max_queue=100_000)
    # The client threads only wait on futures (submitted here) and keep every
    # result: torch itself releases the GIL in its ops and in every tensor's
    # dealloc (THPVariable_clear), which ends a daemon thread at exit through
    # pthread_exit whatever torchport does; this checks the Batcher's part.
    x, kept = torch.ones(1, 4), []
    def client(mine):
        for f in mine:
            try:
                kept.append(f.result())
            except Exception as e:  # a clean error once the batcher stops
                assert type(e).__name__ == "ModelRuntimeError", repr(e)
    if mode == "exit":
        futures = [batcher.submit(x) for _ in range(20_000)]
        for i in range(8):
            threading.Thread(target=client, args=(futures[i::8],), daemon=True).start()
        time.sleep(0.3)
        print("exiting", flush=True)
    else:  # shutdown with queued work: requests wait for a batch of 4096 rows or 2 s
        kept = [batcher.submit(torch.ones(1, 4)) for _ in range(3)]
        for _ in range(500):
            batcher.submit(torch.ones(1, 4))  # abandoned
        outcome = []
        def waiter(f):
            try:
                f.result(); outcome.append("result")
            except Exception as e:
                outcome.append(type(e).__name__ + ": " + str(e))
        threads = [threading.Thread(target=waiter, args=(f,)) for f in kept]
        for t in threads: t.start()
        del kept
        batcher = None  # the last reference is in the waiting threads' futures
        for t in threads: t.join()
        print("outcome", outcome, flush=True)
""")


def test_exit_while_client_threads_still_submit_does_not_abort(rows_model, tmp_path):
    script = tmp_path / "w.py"
    script.write_text(WORKER)
    for _ in range(3):
        proc = subprocess.run([sys.executable, str(script), str(rows_model), "exit", "1", "4"], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0 and "exiting" in proc.stdout, (proc.returncode, proc.stderr[-2000:])


def test_queued_and_abandoned_work_answers_every_caller(rows_model, tmp_path):
    script = tmp_path / "w.py"
    script.write_text(WORKER)
    proc = subprocess.run([sys.executable, str(script), str(rows_model), "queued", "2000", "4096"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "outcome ['result', 'result', 'result']" in proc.stdout, proc.stdout
