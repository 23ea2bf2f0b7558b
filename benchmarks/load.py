"""Load time with the payload checksum verified against without it, side by side.

    .venv/bin/python benchmarks/load.py [--rounds 15]

Exports a ResNet-18-style model (11.7 M parameters, 45 MB of weights, built
here: no download) and, in one process and alternating rounds, loads it with
``NativeModel(path, verify_checksum=False)``, with the check (XXH3-128, what
export records), and a copy whose manifest carries the older SHA-256 checksum
(still verified, with SHA-256), plus ``torch.jit.load`` for reference. Prints the
median load time of each and the ratio to loading without the check
(target: with the check <= 1.2x without).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from formats import ResNet18  # noqa: E402  (the same ResNet-18-style model as the format benchmark)

import torchport  # noqa: E402
from torchport.native import NativeModel  # noqa: E402


def with_sha256(data: bytes) -> bytes:
    """The artifact as an export before XXH3 wrote it: the manifest's checksum is SHA-256
    over the same framing (sorted records but the manifest and the save id; name, a zero
    byte, the size as 8 little-endian bytes, the bytes)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        records = [(i.filename, z.read(i)) for i in z.infolist()]
    skipped = ("extra/torchport/manifest.json", ".data/serialization_id")
    sha = hashlib.sha256()
    for name, payload in sorted((n.split("/", 1)[1], p) for n, p in records):
        if name not in skipped:
            sha.update(name.encode() + b"\0" + len(payload).to_bytes(8, "little") + payload)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, payload in records:
            if name.endswith("extra/torchport/manifest.json"):
                manifest = json.loads(payload)
                manifest["checksum"] = "sha256:" + sha.hexdigest()
                payload = json.dumps(manifest).encode()
            z.writestr(name, payload)
    return out.getvalue()


def timed_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = torchport.export(ResNet18(classes=1000).eval(), torch.rand(1, 3, 64, 64), Path(tmp) / "resnet18.pt")
        old = Path(tmp) / "resnet18_sha256.pt"
        old.write_bytes(with_sha256(path.read_bytes()))
        mb = path.stat().st_size / 1e6

        def jit_load() -> None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                torch.jit.load(str(path))

        contenders = {
            "NativeModel, no checksum": lambda: NativeModel(path, verify_checksum=False),
            "NativeModel, xxh3-128 checksum (default)": lambda: NativeModel(path),
            "NativeModel, sha256 checksum (older artifacts)": lambda: NativeModel(old),
            "torch.jit.load": jit_load,
        }
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for fn in contenders.values():  # page cache and allocator warm
            fn()
        for _ in range(args.rounds):
            for key, fn in contenders.items():
                times[key].append(timed_ms(fn))
    base = statistics.median(times["NativeModel, no checksum"])
    print(f"torch {torch.__version__}, {sys.platform}; ResNet-18-style artifact {mb:.1f} MB; "
          f"median of {args.rounds} alternating rounds\n")
    print("| load | median (ms) | ratio to no checksum |")
    print("| --- | --- | --- |")
    for key, values in times.items():
        m = statistics.median(values)
        print(f"| {key} | {m:.1f} | {m / base:.2f} |")


if __name__ == "__main__":
    main()
