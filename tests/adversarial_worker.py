"""Runs every case of hostile.CASES through the three entry points: the
binding (torchport.NativeModel and torchport._native), the torchport-run
binary (a subprocess) and the torchport command (its main(), in process).
Started by test_adversarial.py as a subprocess, so that a crash ends this
process, not the test run; the case about to run is written to LOG first.

    python tests/adversarial_worker.py FOLDER RESULTS.json LOG
    python tests/adversarial_worker.py FOLDER RESULTS.json LOG --surfaces PT PT2 PTE|- ONNX|-

With --surfaces it runs tests/hostile_surfaces.py instead, from the given good
artifacts (the session's compiled ones), each case through the entry points
that accept its surface; after every case the good model must still run here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
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


def outcome(fn, seconds: int = HANG_SECONDS) -> dict:
    """{"kind": error kind or "ok", "message": ..., "seconds": ...} of `fn()` stopped
    after `seconds`; a Python exception that is not a torchport error is recorded
    as "raw:<type>"."""
    start = time.monotonic()
    signal.alarm(seconds)
    try:
        fn()
        kind, message = "ok", ""
    except Hang:
        kind, message = "hang", f"more than {seconds} s"
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


def run_binary(argv: list[str], seconds: int) -> dict:
    """torchport-run ARGV: its exit code, stderr (head and tail), wall and CPU seconds."""
    import resource

    start, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run([str(binary_path()), *argv], capture_output=True, text=True, errors="replace",
                              timeout=seconds)
    except subprocess.TimeoutExpired:
        return {"kind": "hang", "message": "", "seconds": seconds, "exit": None, "cpu": None}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"exit": proc.returncode, "message": _short(proc.stderr), "seconds": round(time.monotonic() - start, 3),
            "cpu": round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 3)}


def run_command(argv: list[str], run=outcome) -> dict:
    """`torchport ARGV` in this process through `run` (outcome, or timed): its exit code and stderr."""
    err = io.StringIO()
    code: list[int] = []

    def go():
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code.append(cli.main(argv))

    result = run(go)
    result["exit"] = code[0] if code else None
    result["message"] = _short(err.getvalue()) or result["message"]
    return result


def _short(text: str) -> str:
    """A message's head and tail (a message naming its file starts with it; the last line is the verdict)."""
    return text if len(text) <= 4000 else text[:2000] + " [...] " + text[-2000:]


def through_binary(case, a, i, out, o) -> dict:
    return run_binary(_argv(case, a, i, out, o, binary=True), HANG_SECONDS)


def through_command(case, a, i, out, o) -> dict:
    return run_command(_argv(case, a, i, out, o, binary=False))


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


def _surface_argv(o: dict, out: Path, *, binary: bool) -> list[str]:
    if "argv" in o:
        return list(o["argv"])
    argv = ["predict" if binary else "run", str(o["artifact"]), "--input", str(o["input"]), "--output", str(out)]
    return argv + (["--profile", str(o["profile"])] if "profile" in o else [])


# The shared 2-core machine runs at a load of 10 to 20: a call's wall time says
# little there, so a hang is judged on CPU time (the test's limit on "cpu") and
# a call is stopped only after WALL_SECONDS (a deadlock, which uses no CPU, ends there).
WALL_SECONDS = 60


def timed(fn) -> dict:
    """outcome(fn) under the wall limit, with the CPU seconds it took ("cpu")."""
    start = time.process_time()
    result = outcome(fn, WALL_SECONDS)
    result["cpu"] = round(time.process_time() - start, 3)
    return result


def surface_binding(o: dict, out: Path) -> dict:
    def go():
        if "call" in o:
            return o["call"]()
        model = torchport.NativeModel(o["artifact"], profile=o.get("profile"))
        data = read_tensor_file(o["input"], o["artifact"])
        outputs = model.run(*data) if isinstance(data, list) else model.run(data)
        _native.write_tensor_file(str(out), list(outputs), protect=[str(o["artifact"]), str(o["input"])])

    return timed(go)


SURFACE_RUNNERS = {
    "binding": surface_binding,
    "binary": lambda o, out: run_binary(_surface_argv(o, out, binary=True), WALL_SECONDS),
    "command": lambda o, out: run_command(_surface_argv(o, out, binary=False), timed),
}


def _surface_goods(folder: Path, pt: str, pt2: str, pte: str, onnx: str):
    import hostile_surfaces

    class Mean(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return image.to(torch.float32).mean(dim=(1, 2, 3)).unsqueeze(1)  # [B, 1]

    image_model = torchport.export(Mean(), (torch.zeros(1, 16, 24, 3, dtype=torch.uint8),), folder / "mean.pt",
                                   input_names=["image"])
    x_input = folder / "x.pt"
    torch.save([torch.rand(3, 6)], x_input)
    given = lambda p: None if p == "-" else Path(p)  # noqa: E731 - "-": that format is not available
    return hostile_surfaces.Goods(Path(pt), given(pt2), given(pte), x_input, image_model, onnx=given(onnx))


def main_surfaces(folder: Path, results_path: Path, log: Path, pt: str, pt2: str, pte: str, onnx: str) -> int:
    import hostile_surfaces

    signal.signal(signal.SIGALRM, _alarm)
    goods = _surface_goods(folder, pt, pt2, pte, onnx)
    probe = torch.rand(2, 6)
    reference = torchport.NativeModel(goods.pt).run(probe)[0]
    before = {p: digest(p) for p in (goods.pt, goods.pt2, goods.pte, goods.onnx, goods.x_input, goods.image_model) if p}
    results = []
    for n, case in enumerate(hostile_surfaces.CASES):
        if getattr(goods, case.surface, True) is None:  # a .pte without ExecuTorch (or a run without a .pt2)
            continue
        if os.environ.get("SURFACES_ONLY") and case.surface not in os.environ["SURFACES_ONLY"].split(","):
            continue  # (by hand: one surface at a time)
        with log.open("a") as f:
            f.write(case.name + "\n")
        where = folder / f"surface{n:03d}"
        where.mkdir()
        row = {"name": case.name}
        for entry in case.entries:
            (where / entry).mkdir()
            o = case.build(where / entry, goods)  # afresh per entry point: a run may consume what it built
            # The files the case made: the message must name one of them (or an input).
            names = [str(p) for k, p in o.items() if k in ("artifact", "input", "profile") and Path(p).parent == where / entry]
            o.setdefault("input", goods.x_input)
            row[entry] = SURFACE_RUNNERS[entry](o, where / entry / "out.pt")
            row[entry]["names"] = names
        usable = timed(lambda: torch.equal(torchport.NativeModel(goods.pt).run(probe)[0], reference) or 1 / 0)
        row["usable"] = usable["kind"] == "ok"
        row["good_files_intact"] = all(digest(p) == d for p, d in before.items())
        results.append(row)
    results_path.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    if "--surfaces" in sys.argv:
        at = sys.argv.index("--surfaces")
        sys.exit(main_surfaces(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[at + 1:at + 5]))
    sys.exit(main())
