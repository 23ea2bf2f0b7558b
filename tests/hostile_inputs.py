"""Hostile PNG, JPEG, .npy and .npz files built byte by byte, shared by
tests/test_input_hardening.py and the image fuzz (tests/test_image_fuzz.py)."""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
from PIL import Image

# --- PNG ----------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_file(width: int, height: int, depth: int, colour: int, idat: bytes, *, interlace: int = 0,
             extra: list[tuple[bytes, bytes]] = ()) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    body = png_chunk(b"IHDR", ihdr) + b"".join(png_chunk(k, d) for k, d in extra)
    return b"\x89PNG\r\n\x1a\n" + body + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def pack_rows(samples: np.ndarray, depth: int) -> list[bytes]:
    """[H, W*channels] integer samples -> each row's bytes at `depth` bits, MSB first."""
    rows = []
    for row in samples:
        if depth == 16:
            rows.append(row.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(row.astype(np.uint8).tobytes())
        else:
            bits = "".join(format(int(v), f"0{depth}b") for v in row)
            bits += "0" * (-len(bits) % 8)
            rows.append(int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b"")
    return rows


def png_of(samples: np.ndarray, depth: int, colour: int, *, interlace: int = 0,
           extra: list[tuple[bytes, bytes]] = ()) -> bytes:
    """A PNG of `samples` ([H, W, channels] integers), filter 0, Adam7 when `interlace`."""
    h, w, c = samples.shape
    if not interlace:
        raw = b"".join(b"\x00" + r for r in pack_rows(samples.reshape(h, w * c), depth))
    else:
        raw = b""
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                               (0, 1, 1, 2)]:
            sub = samples[y0::dy, x0::dx]
            if sub.size:
                raw += b"".join(b"\x00" + r for r in pack_rows(sub.reshape(sub.shape[0], -1), depth))
    return png_file(w, h, depth, colour, zlib.compress(raw), interlace=interlace, extra=extra)


# --- JPEG ---------------------------------------------------------------------


def jpeg_of(mode: str = "RGB", size=(24, 16), *, subsampling: int = 0, progressive: bool = False,
            seed: int = 0) -> bytes:
    g = np.random.default_rng(seed)
    w, h = size
    channels = {"RGB": 3, "L": 1, "CMYK": 4}[mode]
    base = g.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    im = Image.fromarray(base[:, :, 0] if channels == 1 else base, mode=mode)
    buf = io.BytesIO()
    kwargs = {"subsampling": subsampling} if mode == "RGB" else {}
    im.save(buf, format="JPEG", quality=90, progressive=progressive, **kwargs)
    return buf.getvalue()


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset of the 0xFF, segment length) of each marker segment before the first scan."""
    out, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
        out.append((marker, at, length))
        if marker == 0xDA:
            break
        at += 2 + length
    return out


def jpeg_frame(data: bytes) -> int:
    """Offset of the SOF segment's 0xFF."""
    return next(at for m, at, _ in jpeg_segments(data) if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC))


def with_dht(data: bytes, counts: list[int], table: int = 0x00) -> bytes:
    """`data` with one more Huffman table, right after SOI: the given 16 code counts."""
    values = bytes(i % 256 for i in range(sum(counts)))
    body = bytes([table]) + bytes(counts) + values
    return data[:2] + b"\xff\xc4" + struct.pack(">H", 2 + len(body)) + body + data[2:]


def with_frame(data: bytes, *, marker: int = None, precision: int = None, height: int = None,
               width: int = None) -> bytes:
    b = bytearray(data)
    at = jpeg_frame(data)
    if marker is not None:
        b[at + 1] = marker
    if precision is not None:
        b[at + 4] = precision
    if height is not None:
        b[at + 5:at + 7] = struct.pack(">H", height)
    if width is not None:
        b[at + 7:at + 9] = struct.pack(">H", width)
    return bytes(b)


# --- .npy / .npz ---------------------------------------------------------------


def npy_with_header(header: str, data: bytes = b"") -> bytes:
    text = header.encode("latin1")
    pad = -(10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def npz_deflated(name: str, member: bytes, *, declared: int = None) -> bytes:
    """A one-member zip whose member is raw-deflated; `declared` overrides its inflated size."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = comp.compress(member) + comp.flush()
    size = len(member) if declared is None else declared
    crc = zlib.crc32(member)
    fname = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(payload), size, len(fname), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(payload), size,
                          len(fname), 0, 0, 0, 0, 0, 0)
    body = local + fname + payload
    cd = central + fname
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(cd), len(body), 0)
    return body + cd + eocd


# --- the image fuzz --------------------------------------------------------------


def image_seeds() -> list[bytes]:
    g = np.random.default_rng(1)
    rgb = g.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    pal = io.BytesIO()
    Image.fromarray(rgb).quantize(8).save(pal, format="PNG")
    return [buf.getvalue(), pal.getvalue(), png_of(rgb, 8, 2, interlace=1), jpeg_of(), jpeg_of(subsampling=2),
            jpeg_of(progressive=True), jpeg_of("L")]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One structure-aware mutation: byte flips, a cut, a grown Huffman table, a changed frame, spliced bytes."""
    b = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:
        del b[rng.randrange(8, len(b)):]
    elif kind == 2 and data[:2] == b"\xff\xd8":  # the crash class: Huffman tables with too many codes
        counts = [rng.choice([0, 0, 1, 2, 255, rng.randrange(256)]) for _ in range(16)]
        return with_dht(data, counts, table=rng.choice([0x00, 0x01, 0x10, 0x11]))
    elif kind == 3 and data[:2] == b"\xff\xd8":
        at = jpeg_frame(data)
        b[at + 5 + rng.randrange(4)] = rng.randrange(256)
        b[at + 11 + 3 * rng.randrange(3)] = rng.randrange(256)  # a sampling factor
    elif kind == 4:
        at = rng.randrange(len(b))
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        at = rng.randrange(len(b))
        b[at:at + 4] = b"\xff" * 4
    return bytes(b)
