"""The wheel, built with every backend, on a machine that has only torch.

`pip wheel .` builds torchport with the ExecuTorch plugin (reusing the suite's
build folder, so only packaging runs); the wheel goes into a fresh venv whose
site-packages holds torch, numpy and their own dependencies and nothing else
(linked from this venv rather than reinstalled: pip install of the torch file
takes about 40 s here, the links a second; the import system and the loader see
the same folders either way). There, TorchScript and `.pt2` must load and give
the numbers this process computes, through the binding and `torchport-run`, and
a `.pte` must be a clean Unavailable error naming the extra to install.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import torch

Marker = pytest.importorskip("packaging.markers").Marker  # environment markers of torch's requirements

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not (ROOT / "build" / "make" / "CMakeCache.txt").exists(),
                                reason="needs the suite's build folder (make setup)")


def _closure(names: list[str]) -> set[str]:
    """The distributions `names` need, themselves included (extras and markers that
    do not apply here left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = re.split(r"[ ;<>=!~\[]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(name)
        for req in dist.requires or []:
            if ";" in req and "extra" in req.split(";", 1)[1]:
                continue
            if ";" in req and not Marker(req.split(";", 1)[1]).evaluate():
                continue
            todo.append(req)
    return seen


def _link_only_torch(site: Path) -> None:
    """Links into `site` every top-level entry (package, module, .dist-info, .libs)
    of torch's and numpy's distributions and their dependencies."""
    here = Path(sysconfig.get_paths()["purelib"])
    for name in _closure(["torch", "numpy"]):
        dist = md.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if (here / top).exists() and not (site / top).exists():
                (site / top).symlink_to(here / top)


@pytest.fixture(scope="module")
def torch_only_venv(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", str(work),
         f"-Cbuild-dir={ROOT / 'build' / 'make'}", "-Ccmake.define.TORCHPORT_BUILD_TESTS=ON",
         "-Ccmake.define.TORCHPORT_WITH_EXECUTORCH=ON", str(ROOT)],
        capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel, = work.glob("torchport-*.whl")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    _link_only_torch(site)
    installed = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return env_dir


def _run(env_dir: Path, *cmd, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH", "TORCHPORT_ONNXRUNTIME")}
    env["PATH"] = f"{env_dir / 'bin'}:/usr/bin:/bin"
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=120, **kw)


def test_the_venv_has_only_torch(torch_only_venv):
    probe = _run(torch_only_venv, torch_only_venv / "bin" / "python", "-c",
                 "import importlib.util as u; print([m for m in ('torch', 'numpy', 'executorch', 'onnxruntime', "
                 "'onnx', 'transformers', 'sklearn') if u.find_spec(m)])")
    assert probe.stdout.strip() == "['torch', 'numpy']", probe.stdout + probe.stderr


def test_the_wheel_declares_no_optional_backend(torch_only_venv):
    """No library in the wheel but the ExecuTorch plugin needs ExecuTorch, and none
    points at the build machine's folders."""
    lib = next(torch_only_venv.glob("lib/python*/site-packages/torchport"))
    binaries = [*lib.rglob("*.so"), torch_only_venv / "bin" / "torchport-run"]
    for so in binaries:
        dyn = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout
        needed = re.findall(r"\(NEEDED\).*\[(.*)\]", dyn)
        runpath = ":".join(re.findall(r"\((?:RUNPATH|RPATH)\).*\[(.*)\]", dyn))
        assert all(entry.startswith("$ORIGIN") for entry in runpath.split(":") if entry), (so, runpath)
        if so.name != "libtorchport_executorch.so":
            assert not [n for n in needed if "executorch" in n or "onnxruntime" in n], (so, needed)


def test_torchscript_and_pt2_run_with_only_torch(torch_only_venv, mlp_formats, tmp_path):
    model, paths = mlp_formats
    x = torch.randn(4, 6)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        want = model(x)
    for fmt in ("torchscript", "aoti"):
        path = paths[fmt]
        check = _run(torch_only_venv, "torchport-run", "selfcheck", path)
        assert check.returncode == 0, (fmt, check.stdout, check.stderr)
        out = tmp_path / f"{fmt}.out.pt"
        pred = _run(torch_only_venv, "torchport-run", "predict", path, "--input", tmp_path / "x.pt", "--output", out)
        assert pred.returncode == 0, (fmt, pred.stderr)
        torch.testing.assert_close(torch.load(out), want, rtol=1e-5, atol=1e-6)
        binding = _run(torch_only_venv, torch_only_venv / "bin" / "python", "-c",
                       "import sys, torch, torchport; m = torchport.NativeModel(sys.argv[1]); "
                       "torch.save(m.run(torch.load(sys.argv[2]))[0], sys.argv[3])",
                       path, tmp_path / "x.pt", tmp_path / f"{fmt}.binding.pt")
        assert binding.returncode == 0, (fmt, binding.stderr)
        torch.testing.assert_close(torch.load(tmp_path / f"{fmt}.binding.pt"), want, rtol=1e-5, atol=1e-6)


def test_pte_without_executorch_is_unavailable(torch_only_venv, mlp_pte):
    _, paths = mlp_pte
    paths = {"executorch": paths["xnnpack"]}
    cli = _run(torch_only_venv, "torchport-run", "selfcheck", paths["executorch"])
    assert cli.returncode == 10, (cli.returncode, cli.stdout, cli.stderr)
    assert "pip install 'torchport[executorch]'" in cli.stderr and "Traceback" not in cli.stderr
    binding = _run(torch_only_venv, torch_only_venv / "bin" / "python", "-c",
                   "import sys, torchport\n"
                   "try:\n    torchport.NativeModel(sys.argv[1])\n"
                   "except torchport.NativeUnavailableError as e:\n    print(type(e).__name__, e)\n",
                   paths["executorch"])
    assert binding.returncode == 0 and binding.stdout.startswith("NativeUnavailableError"), binding.stdout + binding.stderr
    assert "torchport[executorch]" in binding.stdout
