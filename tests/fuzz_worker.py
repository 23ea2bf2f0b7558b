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

import hostile
import torchport
from torchport.cli import inspect_artifact
from torchport.native import read_tensor_file

# Central directory fields (offset, size) and end-record fields a structural mutation sets.
CD_FIELDS = [(8, 2), (10, 2), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (42, 4)]
EOCD_FIELDS = [(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)]
BOUNDARY = [0, 1, 2, 7, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**31, 4096]
OPCODES = list(b"()0125FIJKLMNPQRSTUVXabcdeghijlopqrstu}])\x80\x81\x85\x86\x87\x88\x89\x8a\x8b\x8c\x93\x94\x95")


@st.composite
def structural(draw):
    """A mutation of the archive's structure: its zip directory, the model's
    pickle, the golden file's pickle, or the manifest's JSON."""
    target = draw(st.sampled_from(["directory", "pickle", "golden", "json"]))
    if target == "directory":
        eocd = draw(st.booleans())
        fields = EOCD_FIELDS if eocd else CD_FIELDS
        field = draw(st.sampled_from(fields))
        value = draw(st.one_of(st.sampled_from(BOUNDARY), st.integers(0, 2 ** (8 * field[1]) - 1)))
        return (target, eocd, draw(st.integers(0, 20)), field, value % 2 ** (8 * field[1]))
    if target in ("pickle", "golden"):
        edits = draw(st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace", "repeat"]),
                                        st.floats(0, 1), st.sampled_from(OPCODES), st.integers(1, 64)),
                              min_size=1, max_size=4))
        return (target, edits)
    edit = draw(st.sampled_from(["deep", "number", "nan", "drop", "type", "truncate", "bytes", "duplicate"]))
    return (target, edit, draw(st.floats(0, 1)), draw(st.integers(1, 200_000)))


def mutate_pickle(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, where, op, n in edits:
        i = int(where * len(out))
        if kind == "insert":
            out[i:i] = bytes([op])
        elif kind == "delete":
            del out[i:i + n]
        elif kind == "replace" and out:
            out[min(i, len(out) - 1)] = op
        elif kind == "repeat":  # the same opcodes again and again: nesting, memo growth
            out[i:i] = bytes(out[i:i + 8]) * n
    return bytes(out)


def mutate_json(text: str, edit: str, where: float, n: int) -> bytes:
    import random

    rng = random.Random(int(where * 1e9) ^ n)
    doc = json.loads(text)
    keys = list(doc)
    key = keys[int(where * len(keys)) % len(keys)]
    if edit == "deep":
        return (text[:-1] + f', "{key}": ' + "[" * n + "]" * n + "}").encode()
    if edit == "number":
        doc[key] = rng.choice([2**70, -(2**63) - 1, 1e308, -1, 0, 2**64, 3.5])
    elif edit == "nan":
        return (text[:-1] + f', "{key}": ' + rng.choice(["NaN", "Infinity", "-Infinity", "1e999"]) + "}").encode()
    elif edit == "drop":
        doc.pop(key)
    elif edit == "type":
        doc[key] = rng.choice([None, "x", 1, [], {}, [None], {"a": None}, True])
    elif edit == "truncate":
        return text[: int(where * len(text))].encode()
    elif edit == "bytes":
        raw = bytearray(text.encode())
        raw[int(where * len(raw)) % len(raw)] = rng.choice([0x00, 0xFF, 0xC0, 0x80, 0x0A])
        return bytes(raw)
    elif edit == "duplicate":
        return (text[:-1] + f', "{key}": {json.dumps(doc[key])}' + "}").encode()
    return json.dumps(doc).encode()


def apply_structural(artifact: bytes, mutation) -> bytes:
    target = mutation[0]
    if target == "directory":
        _, eocd, entry, (offset, size), value = mutation
        if eocd:
            return hostile.patch_eocd(artifact, offset, size, value)
        entries = hostile.central_directory(artifact)
        return hostile.patch_central_directory(artifact, offset, size, value, entry=entry % len(entries))
    if target == "pickle":
        return hostile.rewrite(artifact, lambda n, p: mutate_pickle(p, mutation[1]) if n.endswith("/data.pkl") else p)
    if target == "golden":
        def golden(name, payload):
            if not name.endswith("extra/torchport/golden.pt"):
                return payload
            return hostile.build_zip([(i.filename, mutate_pickle(p, mutation[1]) if i.filename.endswith("data.pkl") else p)
                                      for i, p in hostile.zip_records(payload)])
        return hostile.rewrite(artifact, golden)
    _, edit, where, n = mutation
    name = hostile.record_name(artifact, "extra/torchport/manifest.json")
    text = dict((i.filename, p) for i, p in hostile.zip_records(artifact))[name].decode()
    return hostile.with_manifest(artifact, mutate_json(text, edit, where, n))


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
    parser.add_argument("--structure", type=int, default=400)
    args = parser.parse_args()

    artifact = Path(args.artifact).read_bytes()
    input_file = Path(args.inputs).read_bytes()
    golden_in, golden_out = torchport.read_golden(args.artifact)
    log = open(args.log, "w", buffering=1)
    tally: dict[str, collections.Counter] = {
        "artifacts": collections.Counter(), "inputs": collections.Counter(),
        "structure (C++ reader)": collections.Counter(), "structure (Python tools)": collections.Counter(),
    }
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

    @opts(args.structure)
    @given(structural())
    def fuzz_structure(mutation):
        log.write(f"structure {str(mutation)[:300]}\n")
        path = tmp / "structure.pt"
        path.write_bytes(apply_structural(artifact, mutation))
        # The C++ reader, through the binding: an error, or the golden numbers.
        try:
            outputs = torchport.NativeModel(path).run(*golden_in)
            for got, expected in zip(outputs, golden_out):
                assert torch.equal(got, expected), f"mutated archive {mutation} loaded and gave different numbers"
            tally["structure (C++ reader)"]["loaded, correct result"] += 1
        except torchport.TorchportError as e:
            tally["structure (C++ reader)"][type(e).__name__] += 1
        # The Python tools: a torchport error or a result, never another exception.
        for tool in (lambda: inspect_artifact(str(path)), lambda: torchport.read_golden(path),
                     lambda: torchport.verify(path, runtimes=("torchscript", "native"))):
            try:
                tool()
                tally["structure (Python tools)"]["ran"] += 1
            except torchport.TorchportError as e:
                tally["structure (Python tools)"][type(e).__name__] += 1

    fuzz_artifact()
    fuzz_inputs()
    fuzz_structure()
    print(json.dumps({k: dict(v) for k, v in tally.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
