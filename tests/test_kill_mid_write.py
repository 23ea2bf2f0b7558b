"""kill -9 in the middle of a write (issue 23): `export` (TorchScript and ONNX),
a checkpoint save and `torchport triton` are killed with SIGKILL at random
moments; the final name must then hold the old file or a complete new one,
and after the next successful run no temporary file is left.

Importing torch takes seconds, so one driver process (this file run as a
script) imports it once and forks a writer per attempt: the child writes two
versions in turn until the driver kills it after a random delay; the driver
copies what the final names hold after each kill (the snapshots this test
checks), then runs the writer once more to completion.

    python tests/test_kill_mid_write.py MODE FOLDER KILLS SEED
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
#: kills per writer: ONNX's export takes seconds (tracing, then the parity check), the others a fraction
KILLS = {"torchscript": 5, "onnx": 3, "checkpoint": 6, "triton": 6}
MODES = tuple(KILLS)


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    # About 1 MB of weights: a write long enough to be interrupted in its middle.
    return torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                               torch.nn.Linear(512, 4)).eval()


PROBE = torch.linspace(-1, 1, 2 * 64).reshape(2, 64)


# --- the driver (run as a script) ------------------------------------------------------------


def _writer(mode: str, folder: Path):
    """A function writing version i % 2 of `mode`'s file(s) into `folder`."""
    import torchport
    from torchport import cli
    from torchport.checkpoint import save_checkpoint

    models = [_model(1), _model(2)]
    if mode in ("torchscript", "onnx"):
        return lambda i: torchport.export(models[i % 2], PROBE, folder / f"model{_suffix(mode)}", format=mode,
                                          overwrite=True)
    if mode == "checkpoint":
        return lambda i: save_checkpoint(folder / "checkpoint.pt", {"version": i % 2, "state": models[i % 2].state_dict()})
    sources = [torchport.export(m, PROBE, folder.parent / f"source{n}.pt", overwrite=True) for n, m in enumerate(models)]

    def triton(i):  # a new version, then version 1 replaced (--force), in turn
        extra = [] if i % 4 < 2 else ["--version", "1", "--force"]
        assert cli.main(["triton", str(sources[i % 2]), "--repo", str(folder), "--name", "m", "--no-check", *extra]) == 0

    return triton


def _suffix(mode: str) -> str:
    return ".onnx" if mode == "onnx" else ".pt"


def drive(mode: str, folder: Path, kills: int, seed: int) -> None:
    torch.set_num_threads(1)  # no thread pool in the parent: the forked writers start clean
    write = _writer(mode, folder)
    write(0)  # the old file; then again, timed warm: kills land within 1.5 writes of the start
    start = time.monotonic()
    write(0)
    took = time.monotonic() - start
    rng = random.Random(seed)
    progress = folder.parent / "progress"
    done = []
    for k in range(kills):
        progress.write_text("")
        pid = os.fork()
        if pid == 0:  # the writer: versions 1, 2, 3... until killed
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            for i in range(1, 200):
                write(i)
                with progress.open("a") as f:
                    f.write(f"{i}\n")
            os._exit(0)
        time.sleep(rng.uniform(0.0, 1.5 * took))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        done.append(len(progress.read_text().split()))
        shutil.copytree(folder, folder.parent / f"snapshot{k}", symlinks=True)
    write(0)  # the next successful run
    print(json.dumps({"write_seconds": round(took, 3), "writes_completed_before_each_kill": done}), flush=True)


# --- the test ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driven(tmp_path_factory) -> dict[str, Path]:
    """Every mode driven in one process each, all at once (the writes are I/O and torch's own work)."""
    pytest.importorskip("onnx")
    root = tmp_path_factory.mktemp("kill")
    procs = {}
    for n, mode in enumerate(MODES):
        (root / mode / "out").mkdir(parents=True)
        env = dict(os.environ, TMPDIR=str(root / mode))
        procs[mode] = subprocess.Popen([sys.executable, __file__, mode, str(root / mode / "out"), str(KILLS[mode]), str(n)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=HERE)
    for mode, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{mode}: driver exit {proc.returncode}\n{err[-3000:]}"
        print(mode, out.strip().splitlines()[-1])  # the write time and the writes completed before each kill
    return {mode: root / mode for mode in MODES}


def _outputs(path: Path) -> torch.Tensor:
    import torchport

    model = torchport.NativeModel(path)  # loads: complete, checksum intact
    assert model.selfcheck()["ok"], path
    return model.run(PROBE)[0]


def _expected() -> list[torch.Tensor]:
    with torch.inference_mode():
        return [_model(1)(PROBE), _model(2)(PROBE)]


def _temporaries(folder: Path) -> list[str]:
    """Everything a writer leaves beside the files it writes: hidden names (the C++
    writer's `.torchport-*`, Triton's `.N.*.tmp` version folders)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


@pytest.mark.parametrize("mode", ["torchscript", "onnx"])
def test_killed_export_leaves_the_old_or_a_complete_new_artifact(driven, mode):
    expected = _expected()
    for snap in sorted(driven[mode].glob("snapshot*")):
        got = _outputs(snap / f"model{_suffix(mode)}")
        tol = {} if mode == "torchscript" else {"atol": 1e-5, "rtol": 1e-4}
        assert any(torch.allclose(got, e, **tol) if tol else torch.equal(got, e) for e in expected), \
            f"{snap}: neither the old nor the new model"
    out = driven[mode] / "out"
    assert sorted(p.name for p in out.iterdir()) == [f"model{_suffix(mode)}"], list(out.iterdir())
    final = _outputs(out / f"model{_suffix(mode)}")  # the last run wrote version 0
    assert torch.allclose(final, expected[0], atol=1e-5, rtol=1e-4), "the next run did not replace the file"


def test_killed_checkpoint_save_leaves_the_old_or_a_complete_new_checkpoint(driven):
    states = [_model(1).state_dict(), _model(2).state_dict()]
    for snap in sorted(driven["checkpoint"].glob("snapshot*")):
        ckpt = torch.load(snap / "checkpoint.pt", weights_only=True)
        v = ckpt["version"]
        assert all(torch.equal(ckpt["state"][k], states[v][k]) for k in states[v]), f"{snap}: a torn checkpoint"
    out = driven["checkpoint"] / "out"
    assert [p.name for p in out.iterdir()] == ["checkpoint.pt"]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["version"] == 0  # the last run's


def test_killed_triton_export_leaves_every_version_complete_and_sweeps_its_folders(driven):
    sources = [(driven["triton"] / f"source{n}.pt").read_bytes() for n in (0, 1)]
    for snap in sorted(driven["triton"].glob("snapshot*")) + [driven["triton"] / "out"]:
        model_dir = snap / "m"
        assert '\nname: "m"\n' in (model_dir / "config.pbtxt").read_text(), snap
        versions = [p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        assert versions, snap
        for v in versions:
            assert (v / "model.pt").read_bytes() in sources, f"{v}: a torn or foreign model.pt"
    leftovers = _temporaries(driven["triton"] / "out")
    assert not leftovers, f"temporary files left after the next successful run: {leftovers}"


def test_no_temporary_file_is_left_after_the_next_run_in_any_writer(driven):
    for mode in ("torchscript", "onnx", "checkpoint"):
        assert not _temporaries(driven[mode] / "out"), (mode, _temporaries(driven[mode] / "out"))
        # The drivers' TMPDIR: a compiler's scratch files go beside the artifact, not there.
        scratch = [p.name for p in driven[mode].iterdir() if p.name.startswith(("torchport", "tmp"))]
        assert not scratch, (mode, scratch)


if __name__ == "__main__":
    drive(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
