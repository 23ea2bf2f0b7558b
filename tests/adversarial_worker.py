"""Runs every case of hostile.CASES through the three entry points: the
binding (torchport.NativeModel and torchport._native), the torchport-run
binary (a subprocess) and the torchport command (its main(), in process).
Started by test_adversarial.py as a subprocess, so that a crash ends this
process, not the test run; the case about to run is written to LOG first.

    python tests/adversarial_worker.py FOLDER RESULTS.json LOG
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import hostile
import torchport
from torchport import _native, cli
from torchport.native import binary_path, read_tensor_file

HANG_SECONDS = 10


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def outcome(fn) -> dict:
    """{"kind": error kind or "ok", "message": ..., "seconds": ...}; a Python
    exception that is not a torchport error is recorded as "raw:<type>"."""
    start = time.monotonic()
    signal.alarm(HANG_SECONDS)
    try:
        fn()
        kind, message = "ok", ""
    except Hang:
        kind, message = "hang", f"more than {HANG_SECONDS} s"
    except torchport.TorchportError as e:
        kind, message = e.kind, str(e)
    except Exception as e:  # noqa: BLE001 - exactly what this worker looks for
        kind, message = f"raw:{type(e).__name__}", str(e)
    finally:
        signal.alarm(0)
    return {"kind": kind, "message": message[:2000], "seconds": round(time.monotonic() - start, 3)}


def through_binding(case, a, i, out, o) -> dict:
    def go():
        if case.target == "option":
            model = torchport.NativeModel(a, threads=o.get("threads"), device=o.get("device", "cpu"))
            model.selfcheck(atol=o.get("atol", 0.0), rtol=o.get("rtol", 0.0))
            return
        model = torchport.NativeModel(a)
        data = read_tensor_file(i)
        outputs = model.run(*data) if isinstance(data, list) else model.run(data)
        _native.write_tensor_file(str(out), list(outputs), protect=[str(a), str(i)])

    return outcome(go)


def _argv(case, a, i, out, o, *, binary: bool) -> list[str]:
    if "atol" in o or "rtol" in o:
        argv = ["selfcheck" if binary else "verify", str(a)]
        argv += ["--atol", repr(o["atol"])] if "atol" in o else []
        argv += ["--rtol", repr(o["rtol"])] if "rtol" in o else []
        return argv
    argv = ["predict" if binary else "run", str(a), "--input", str(i), "--output", str(out)]
    argv += ["--threads", str(o["threads"])] if "threads" in o else []
    argv += ["--device", o["device"]] if "device" in o else []
    return argv


def through_binary(case, a, i, out, o) -> dict:
    start = time.monotonic()
    try:
        proc = subprocess.run([str(binary_path()), *_argv(case, a, i, out, o, binary=True)],
                              capture_output=True, text=True, errors="replace", timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        return {"kind": "hang", "message": "", "seconds": HANG_SECONDS, "exit": None}
    return {"exit": proc.returncode, "message": proc.stderr[-2000:], "seconds": round(time.monotonic() - start, 3)}


def through_command(case, a, i, out, o) -> dict:
    err = io.StringIO()
    code: list[int] = []

    def go():
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code.append(cli.main(_argv(case, a, i, out, o, binary=False)))

    result = outcome(go)
    result["exit"] = code[0] if code else None
    result["message"] = err.getvalue()[-2000:] or result["message"]
    return result


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    folder, results_path, log = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    signal.signal(signal.SIGALRM, _alarm)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
    artifact = torchport.export(model, torch.rand(2, 4), folder / "good.pt")
    good_input = folder / "good_input.pt"
    torch.save([torch.rand(3, 4)], good_input)
    good = hostile.Good(artifact, good_input, artifact.read_bytes())
    before = {p: digest(p) for p in (artifact, good_input)}
    results = []
    for n, case in enumerate(hostile.CASES):
        with log.open("a") as f:
            f.write(case.name + "\n")
        where = folder / f"case{n:03d}"
        where.mkdir()
        o = case.build(where, good)
        a, i = o.get("artifact", artifact), o.get("input", good_input)
        row = {"name": case.name, "target": case.target, "expected": case.kind, "message": case.message}
        for entry, run in (("binding", through_binding), ("binary", through_binary), ("command", through_command)):
            out = o.get("output", where / f"out_{entry}.pt")
            row[entry] = run(case, a, i, out, o)
        row["code_ran"] = case.marker and (where / "MARKER").exists()
        row["good_files_intact"] = all(digest(p) == d for p, d in before.items())
        results.append(row)
    results_path.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
