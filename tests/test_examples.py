"""The examples and the demo, run the way their READMEs tell a user to."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands(readme: Path) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", readme.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder laid out like the repository root after `make demo`: .venv,
    examples/, and the demo's artifact under runs/demo."""
    d = tmp_path_factory.mktemp("user")
    for name in ("examples", "cpp", "CMakeLists.txt"):
        (d / name).symlink_to(ROOT / name)
    (d / ".venv").symlink_to(sys.prefix)
    proc = subprocess.run([str(Path(sys.prefix) / "bin" / "torchport"), "demo", "--out", "runs/demo"],
                          cwd=d, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    d.joinpath("demo.log").write_text(proc.stdout)
    return d


def test_demo_trains_and_agrees(workdir):
    out = (workdir / "demo.log").read_text()
    m = re.search(r"held-out accuracy: Python ([\d.]+)\s+C\+\+ \(torchport-run\) ([\d.]+)", out)
    assert m, out
    py_acc, cpp_acc = float(m.group(1)), float(m.group(2))
    assert py_acc == cpp_acc
    assert py_acc >= 0.95, f"digits CNN accuracy {py_acc}"
    assert "result: bit-exact" in out and "demo: Python and C++ agree" in out


def test_native_app_readme_commands(workdir):
    commands = readme_commands(ROOT / "examples" / "native_app" / "README.md")
    assert any("cmake -S examples/native_app" in c for c in commands)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    runs = {}
    for cmd in commands:
        proc = subprocess.run(["bash", "-c", cmd], cwd=workdir, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
        if cmd.startswith("./build/"):
            runs[cmd] = proc.stdout
    assert len(runs) == 3  # against the wheel (batch 4 and 32), against the C++-only install
    for cmd, out in runs.items():
        batch = "32" if cmd.endswith(" 32") else "4"
        assert f"output logits: [{batch}, 10]" in out and "selfcheck: ok" in out, out
        assert "rejected bad input: input 'image'" in out


def test_readme_python_example(tmp_path):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, flags=re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "result: bit-exact" in proc.stdout
    assert (tmp_path / "mlp.pt").exists()


def test_zoo_benchmark_recovers_the_thermometer_line(tmp_path):
    # The full zoo takes minutes (make zoo); its cheapest row keeps the script honest.
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_zoo.py"), "linear", "--out", str(tmp_path),
                           "--table", str(tmp_path / "zoo.md")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / "zoo.md").read_text()
    m = re.search(r"\| linear \| thermometer \| \d+ \| .* w = ([\d.]+), b = (-[\d.]+) \|.*\| bit-exact \|", table)
    assert m, table
    assert abs(float(m.group(1)) - 5.37) < 0.01 and abs(float(m.group(2)) + 17.3) < 0.05


@pytest.mark.parametrize("fmt, suffix", [("aoti", "pt2"), ("executorch", "pte")])
def test_native_app_runs_other_formats_unchanged(workdir, fmt, suffix):
    # The same program, built by the README commands above, on an AOTInductor
    # package and an ExecuTorch .pte: the backend is picked from the file's
    # content, not by the application.
    app = workdir / "build" / "native_app" / "native_app"
    if not app.exists():
        pytest.skip("native_app was not built (test_native_app_readme_commands failed)")
    import torch

    import torchport
    from conftest import MLP

    if fmt == "executorch" and not torchport._native.WITH_EXECUTORCH:
        pytest.skip("this torchport runtime was built without ExecuTorch")
    torch.manual_seed(0)
    path = torchport.export(MLP().eval(), torch.randn(3, 6), workdir / f"mlp.{suffix}", format=fmt)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    for args, batch in (([str(path)], 3), ([str(path), "32"], 32)):
        proc = subprocess.run([str(app), *args], cwd=workdir, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"output output: [{batch}, 3]" in proc.stdout and "selfcheck: ok" in proc.stdout, proc.stdout
        assert "rejected bad input: input 'x': expected 2 dimensions [batch, 6], got 5" in proc.stdout


def test_native_app_runs_real_world_models(workdir):
    # The issue-8 models (tests/real_world.py) through the same embedding
    # program: structured outputs by name, keyword and optional inputs, a
    # custom operator library, at a batch other than the export example.
    app = workdir / "build" / "native_app" / "native_app"
    if not app.exists():
        pytest.skip("native_app was not built (test_native_app_readme_commands failed)")
    import warnings

    import torch

    import torchport
    from real_world import IMAGE_DIMS, OPS_LIBRARY, SEQ_DIMS, Detector, OptionalMask, Segmenter, bert, bert_inputs

    torch.ops.load_library(str(OPS_LIBRARY))
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BERT falls back to tracing, with a warning
        cases = [
            (torchport.export(Segmenter().eval(), torch.rand(2, 3, 16, 16), workdir / "seg.pt",
                              dynamic_dims=IMAGE_DIMS, overwrite=True), ["3"], "output aux: [3, 3, 16, 16]"),
            (torchport.export(bert(), None, workdir / "bert.pt", example_kwargs=bert_inputs(2, 8),
                              dynamic_dims=SEQ_DIMS, overwrite=True), ["3"], "output pooler_output: [3, 16]"),
            (torchport.export(OptionalMask().eval(), torch.rand(2, 4, 6), workdir / "opt.pt",
                              example_kwargs={"mask": torch.ones(2, 4), "scale": 0.5}, overwrite=True),
             ["5"], "output gate: [5, 4]"),
            (torchport.export(Detector().eval(), torch.rand(2, 3, 8, 8), workdir / "det.pt", overwrite=True,
                              dynamic_dims={"images": {0: "batch", 2: "height", 3: "width"}}),
             ["3", str(OPS_LIBRARY)], "output output_2.labels: ["),  # a list per image, at batch 3
        ]
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    for path, args, line in cases:
        proc = subprocess.run([str(app), str(path), *args], cwd=workdir, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert line in proc.stdout and "selfcheck: ok" in proc.stdout, proc.stdout
