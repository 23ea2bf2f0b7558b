"""Wrong inputs and broken artifacts give a torchport error that names the
problem, through the binding, the binary and the Python command; the process
keeps working afterwards."""

from __future__ import annotations

import pytest
import torch

import torchport
from conftest import run_binary, run_cli

BAD_INPUTS = [
    # (inputs for the MLP [batch, 6] -> [batch, 3], exception, message)
    (lambda: [torch.randn(2, 6, dtype=torch.float64)], torchport.BadInputError, "input 'x': expected dtype float32, got float64"),
    (lambda: [torch.randint(0, 5, (2, 6))], torchport.BadInputError, "input 'x': expected dtype float32, got int64"),
    (lambda: [torch.randn(2, 6, 1)], torchport.BadInputError, r"input 'x': expected 2 dimensions \[batch, 6\], got 3 \(shape \[2, 6, 1\]\)"),
    (lambda: [torch.randn(6)], torchport.BadInputError, "input 'x': expected 2 dimensions"),
    (lambda: [torch.randn(2, 7)], torchport.BadInputError, r"input 'x': dim 1 expected 6, got 7 \(shape \[2, 7\] vs \[batch, 6\]\)"),
    (lambda: [], torchport.BadInputError, r"expects 1 input \(x\), got 0"),
    (lambda: [torch.randn(2, 6), torch.randn(2, 6)], torchport.BadInputError, r"expects 1 input \(x\), got 2"),
    (lambda: [{"y": torch.randn(2, 6)}], torchport.BadInputError, "missing 'x'; unknown 'y'"),
    (lambda: [torch.randn(2, 6).to_sparse()], torchport.BadInputError, "input 'x': expected a dense tensor"),
    (lambda: ["not a tensor"], torchport.BadInputError, "expected a torch.Tensor or an array with __dlpack__, got str"),
]


@pytest.mark.parametrize("make, exc, message", BAD_INPUTS)
def test_binding_names_the_bad_input(mlp_artifact, make, exc, message):
    _, path = mlp_artifact
    model = torchport.NativeModel(path)
    with pytest.raises(exc, match=message):
        model.run(*make())
    assert model.run(torch.randn(3, 6))[0].shape == (3, 3), "the model still works afterwards"


def test_errors_are_catchable_as_builtin_types(mlp_artifact, tmp_path):
    _, path = mlp_artifact
    with pytest.raises(ValueError):
        torchport.NativeModel(path).run(torch.randn(2, 7))
    with pytest.raises(FileNotFoundError):
        torchport.NativeModel(tmp_path / "missing.pt")


def test_requires_grad_and_non_contiguous_inputs_are_fine(mlp_artifact):
    model, path = mlp_artifact
    x = torch.randn(6, 4, requires_grad=True).t()  # [4, 6], a non-contiguous view needing grad
    (y,) = torchport.NativeModel(path).run(x)
    with torch.inference_mode():
        # The runtime runs a contiguous copy: the same kernels on the same bytes, so bit-exact.
        torch.testing.assert_close(y, model(x.detach().contiguous()), rtol=0, atol=0)
        # Eager on the strided view may take other kernels (AVX-512 CPUs differ by ~3e-8):
        # equal within float32 rounding only.
        torch.testing.assert_close(y, model(x.detach()), rtol=1e-5, atol=1e-6)


def _zip_bytes(entries):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in entries.items():
            z.writestr(name, content)
    return buf.getvalue()


def _artifact_faults(tmp_path, good):
    data = good.read_bytes()
    files = {
        "missing": None,
        "directory": None,
        "empty": b"",
        "text": b"this is not a model",
        "truncated": data[: len(data) // 2],
        "zip_without_model": _zip_bytes({"a/data.txt": b"hello"}),
    }
    out = {}
    for name, content in files.items():
        p = tmp_path / f"{name}.pt"
        if name == "directory":
            p.mkdir()
        elif content is not None:
            p.write_bytes(content)
        out[name] = p
    return out


def test_broken_artifacts_are_clean_errors(mlp_artifact, tmp_path):
    _, good = mlp_artifact
    for name, path in _artifact_faults(tmp_path, good).items():
        expected = torchport.ArtifactNotFoundError if name == "missing" else torchport.BadArtifactError
        with pytest.raises(expected, match=str(path.name)):
            torchport.NativeModel(path)
        proc = run_binary("info", str(path))
        assert proc.returncode == 3, (name, proc.returncode, proc.stderr)
        assert path.name in proc.stderr and "error[" in proc.stderr
    assert torchport.NativeModel(good).run(torch.randn(1, 6))[0].shape == (1, 3)


def test_binary_exit_codes_and_messages(mlp_artifact, tmp_path):
    _, path = mlp_artifact
    bad = tmp_path / "bad.pt"
    torch.save(torch.randn(2, 7), bad)
    proc = run_binary("predict", str(path), "--input", str(bad), "--output", str(tmp_path / "o.pt"))
    assert proc.returncode == 4
    assert "input 'x': dim 1 expected 6, got 7" in proc.stderr
    assert not (tmp_path / "o.pt").exists()

    notensor = tmp_path / "notensor.pt"
    torch.save({"x": 3}, notensor)
    proc = run_binary("predict", str(path), "--input", str(notensor), "--output", str(tmp_path / "o.pt"))
    assert proc.returncode == 4 and "entry 'x' is a Int, expected a tensor" in proc.stderr

    for args in (["frobnicate", str(path)], ["predict"], ["predict", str(path)], ["bench", str(path), "--iters", "many"],
                 ["info", str(path), "--bogus", "1"], ["info", str(path), "--device", "quantum"]):
        proc = run_binary(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("torchport-run: "), proc.stderr


def test_python_command_exit_codes(mlp_artifact, tmp_path):
    _, path = mlp_artifact
    bad = tmp_path / "bad.pt"
    torch.save([torch.randn(2, 6, dtype=torch.float64)], bad)
    proc = run_cli("run", str(path), "--input", str(bad), "--output", str(tmp_path / "o.pt"))
    assert proc.returncode == 4 and "expected dtype float32, got float64" in proc.stderr
    proc = run_cli("inspect", str(tmp_path / "missing.pt"))
    assert proc.returncode == 3 and "does not exist" in proc.stderr
    (tmp_path / "junk.pt").write_bytes(b"junk")
    proc = run_cli("verify", str(tmp_path / "junk.pt"))
    assert proc.returncode == 3 and "not a loadable TorchScript archive" in proc.stderr
