"""Structure-aware fuzz of .pt2 and .pte artifacts (run by
test_artifact_security.py in a subprocess, so that a crash or a hang is caught
and reported, not fatal).

    python tests/artifact_fuzz_worker.py ARTIFACT LOG --cases 300 --seed 0

.pt2: zip directory fields set to boundary values, record names given '..',
absolute, backslash and control-byte forms, manifest fields retyped or resized
(resealed, so that the check behind the checksum is reached), library bytes
flipped. .pte: 32-bit words of the program's flatbuffer set to boundary values
(offsets, lengths, indices, union types), resealed. Every case must end in a
torchport error or in a run; the case about to run is written to LOG first, so
after a crash LOG names it. The summary is printed as JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import struct
import sys
import tempfile
from pathlib import Path

import torch

import hostile
import torchport
from torchport.formats import pack_pte
from torchport.manifest import payload_checksum

BOUNDARY = [0, 1, 2, 3, 4, 7, 8, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
NAMES = ["../", "../../../../tmp/", "/", "\\", ".\\", "./", "//", "\x00", "\x1b", "C:"]


def reseal_zip(data: bytes) -> bytes:
    try:
        return hostile.rewrite(data, lambda n, p: p)
    except Exception:  # noqa: BLE001 - a mutation the zip module cannot read stays as it is
        return data


def mutate_pt2(data: bytes, rng: random.Random) -> bytes:
    what = rng.randrange(4)
    if what == 0:  # a central directory field
        offsets = hostile.central_directory(data)
        field, size = rng.choice([(8, 2), (10, 2), (20, 4), (24, 4), (28, 2), (38, 4), (42, 4), (4, 2)])
        value = rng.choice(BOUNDARY) & ((1 << (8 * size)) - 1)
        out = bytearray(data)
        pos = rng.choice(offsets)
        out[pos + field:pos + field + size] = value.to_bytes(size, "little")
        return bytes(out)
    if what == 1:  # a record name
        records = hostile.zip_records(data)
        i = rng.randrange(len(records))
        name = records[i][0].filename
        cut = rng.randrange(len(name) + 1)
        evil = name[:cut] + rng.choice(NAMES) + name[cut:]
        return hostile.build_zip([(evil if j == i else info.filename, payload)
                                  for j, (info, payload) in enumerate(records)])
    if what == 2:  # a manifest field, resealed
        def change(m):
            key = rng.choice(["inputs", "outputs", "dim_bounds", "structure", "name", "format", "schema"])
            m[key] = rng.choice([None, 0, -1, 2**63, "x" * rng.randrange(1, 300), [], {}, [[1]], {"a": [2**40]},
                                 m.get("inputs"), m.get("outputs")])
            return m
        return reseal_zip(hostile.rewrite(data, lambda n, p: p, fix_checksum=False,
                                          manifest_edit=lambda m: change(m)))
    out = bytearray(data)  # bytes flipped anywhere (the checksum's job)
    for _ in range(rng.randrange(1, 4)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def mutate_pte(program: bytes, manifest: dict, golden: bytes, rng: random.Random) -> bytes:
    out = bytearray(program)
    # Words in the flatbuffer (before the segments), aligned as flatbuffers lays them out.
    limit = min(len(out), struct.unpack_from("<Q", out, 16)[0] if out[8:12] == b"eh00" else len(out))
    for _ in range(rng.randrange(1, 4)):
        pos = rng.randrange(0, max(4, limit - 4)) & ~3
        value = rng.choice(BOUNDARY + [limit, limit - 4, rng.randrange(1 << 32)])
        out[pos:pos + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")
    doc = dict(manifest)
    doc.pop("checksum", None)
    doc["checksum"] = payload_checksum(pack_pte(bytes(out), json.dumps(doc).encode(), golden))
    return pack_pte(bytes(out), json.dumps(doc).encode(), golden)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifact")
    parser.add_argument("log")
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    src = Path(args.artifact)
    data = src.read_bytes()
    rng = random.Random(args.seed)
    counts: collections.Counter = collections.Counter()
    internal = []
    x = torch.randn(2, 6)
    if src.suffix == ".pte":
        p, m, g = struct.unpack("<QQQ", data[-24:])
        parts = (data[:p], json.loads(data[p:p + m]), data[p + m:p + m + g])
    with tempfile.TemporaryDirectory() as tmp, open(args.log, "w") as log:
        for i in range(args.cases):
            log.write(f"{i}\n")
            log.flush()
            try:
                mutated = mutate_pte(*parts, rng) if src.suffix == ".pte" else mutate_pt2(data, rng)
            except Exception as e:  # noqa: BLE001 - the mutator's own limits, not the runtime's
                counts["unbuildable"] += 1
                continue
            path = Path(tmp) / f"case{i}{src.suffix}"
            path.write_bytes(mutated)
            try:
                model = torchport.NativeModel(path)
                model.run(x)
                counts["ran"] += 1
            except torchport.TorchportError as e:
                counts[type(e).__name__] += 1
                if "internal error" in str(e):
                    internal.append(f"{i}: {e}")
            except Exception as e:  # noqa: BLE001 - anything else is a finding
                counts["raw " + type(e).__name__] += 1
                internal.append(f"{i}: {type(e).__name__}: {e}")
            path.unlink()
    print(json.dumps({"counts": counts, "internal": internal[:10]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
