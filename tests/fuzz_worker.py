"""Fuzz the runtime with corrupted artifacts and input files (run by test_fuzz.py
in a subprocess, so that a crash or a hang is caught and reported, not fatal).

    python tests/fuzz_worker.py ARTIFACT INPUTS.pt LOG --artifacts 500 --inputs 300

Every case must end in a torchport error or in a correct result; the summary
is printed as JSON. The case about to run is written to LOG first, so after a
crash LOG names it.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torchport
from torchport.native import read_tensor_file


@st.composite
def mutations(draw, size: int):
    """A truncation, bit flips, a zeroed run, or a mix, of a file of `size` bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "zero", "truncate+flip"]))
    ops = []
    if "truncate" in kind:
        ops.append(("truncate", draw(st.integers(0, size - 1))))
    if "flip" in kind:
        for _ in range(draw(st.integers(1, 8))):
            ops.append(("flip", draw(st.integers(0, size - 1)), draw(st.integers(0, 7))))
    if kind == "zero":
        start = draw(st.integers(0, size - 1))
        ops.append(("zero", start, draw(st.integers(1, 64))))
    return ops


def apply(data: bytes, ops) -> bytes:
    out = bytearray(data)
    for op in ops:
        if op[0] == "truncate":
            del out[op[1]:]
        elif op[0] == "flip" and op[1] < len(out):
            out[op[1]] ^= 1 << op[2]
        elif op[0] == "zero":
            out[op[1]:op[1] + op[2]] = bytes(len(out[op[1]:op[1] + op[2]]))
    return bytes(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifact")
    parser.add_argument("inputs")
    parser.add_argument("log")
    parser.add_argument("--artifacts", type=int, default=500)
    parser.add_argument("--inputs-cases", type=int, default=300)
    args = parser.parse_args()

    artifact = Path(args.artifact).read_bytes()
    input_file = Path(args.inputs).read_bytes()
    golden_in, golden_out = torchport.read_golden(args.artifact)
    log = open(args.log, "w", buffering=1)
    tally: dict[str, collections.Counter] = {"artifacts": collections.Counter(), "inputs": collections.Counter()}
    tmp = Path(tempfile.mkdtemp(prefix="torchport-fuzz-"))
    def opts(n: int) -> settings:
        # Seeded and repeatable: derandomize, no example database.
        return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                        suppress_health_check=list(HealthCheck))

    @opts(args.artifacts)
    @given(mutations(len(artifact)))
    def fuzz_artifact(ops):
        log.write(f"artifact {ops}\n")
        path = tmp / "mutated.pt"
        path.write_bytes(apply(artifact, ops))
        try:
            model = torchport.NativeModel(path)
            outputs = model.run(*golden_in)
        except torchport.TorchportError as e:
            tally["artifacts"][type(e).__name__] += 1
            return
        for got, expected in zip(outputs, golden_out):
            assert torch.equal(got, expected), f"corrupted artifact {ops} loaded and gave different numbers"
        tally["artifacts"]["loaded, correct result"] += 1

    @opts(args.inputs_cases)
    @given(mutations(len(input_file)))
    def fuzz_inputs(ops):
        log.write(f"inputs {ops}\n")
        path = tmp / "inputs.pt"
        path.write_bytes(apply(input_file, ops))
        try:
            data = read_tensor_file(path)
            model = torchport.NativeModel(args.artifact)
            model.run(data) if isinstance(data, dict) else model.run(*data)
        except torchport.TorchportError as e:
            tally["inputs"][type(e).__name__] += 1
            return
        tally["inputs"]["read and ran"] += 1

    fuzz_artifact()
    fuzz_inputs()
    print(json.dumps({k: dict(v) for k, v in tally.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
