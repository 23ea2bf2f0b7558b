"""The bad-input battery: every case through the binding and the torchport-run
binary gets a torchport error that names the problem, and the runtime keeps
working afterwards. (The C++ API gets its own battery in cpp/tests.)"""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

import torchport
from conftest import run_binary


class ImageAndTokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.emb = nn.Embedding(20, 4)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.conv(image).mean(dim=(2, 3))  # (B, 4)
        text = self.emb(tokens).mean(dim=1)  # (B, 4)
        return pooled + text, pooled * text


@pytest.fixture(scope="module")
def battery_model(tmp_path_factory):
    torch.manual_seed(0)
    model = ImageAndTokens().eval()
    path = torchport.export(
        model,
        (torch.rand(2, 3, 8, 8), torch.randint(0, 20, (2, 5))),
        tmp_path_factory.mktemp("battery") / "battery.pt",
        dynamic_dims={"image": [0], "tokens": {0: "batch", 1: "seq"}},
    )
    return model, path


def img(*shape, dtype=torch.float32):
    return torch.rand(*shape).to(dtype)


def tok(*shape, dtype=torch.int64):
    return torch.randint(0, 20, shape).to(dtype)


# (case id, inputs: list for positional or dict by name, message the error must contain)
TENSOR_CASES = [
    ("image float64", [img(2, 3, 8, 8, dtype=torch.float64), tok(2, 5)], "input 'image': expected dtype float32, got float64"),
    ("image float16", [img(2, 3, 8, 8, dtype=torch.float16), tok(2, 5)], "input 'image': expected dtype float32, got float16"),
    ("image bfloat16", [img(2, 3, 8, 8, dtype=torch.bfloat16), tok(2, 5)], "expected dtype float32, got bfloat16"),
    ("image int64", [tok(2, 3, 8, 8), tok(2, 5)], "input 'image': expected dtype float32, got int64"),
    ("image bool", [img(2, 3, 8, 8) > 0.5, tok(2, 5)], "input 'image': expected dtype float32, got bool"),
    ("image complex", [torch.randn(2, 3, 8, 8, dtype=torch.complex64), tok(2, 5)], "expected dtype float32, got complex64"),
    ("tokens float32", [img(2, 3, 8, 8), img(2, 5)], "input 'tokens': expected dtype int64, got float32"),
    ("tokens int32", [img(2, 3, 8, 8), tok(2, 5, dtype=torch.int32)], "input 'tokens': expected dtype int64, got int32"),
    ("tokens uint8", [img(2, 3, 8, 8), tok(2, 5, dtype=torch.uint8)], "input 'tokens': expected dtype int64, got uint8"),
    ("image rank 3", [img(3, 8, 8), tok(2, 5)], "input 'image': expected 4 dimensions [batch, 3, 8, 8], got 3 (shape [3, 8, 8])"),
    ("image rank 5", [img(1, 2, 3, 8, 8), tok(2, 5)], "input 'image': expected 4 dimensions"),
    ("image scalar", [torch.tensor(1.0), tok(2, 5)], "input 'image': expected 4 dimensions [batch, 3, 8, 8], got 0 (shape [])"),
    ("tokens rank 1", [img(2, 3, 8, 8), tok(5)], "input 'tokens': expected 2 dimensions [batch, seq], got 1"),
    ("image channels", [img(2, 4, 8, 8), tok(2, 5)], "input 'image': dim 1 expected 3, got 4 (shape [2, 4, 8, 8] vs [batch, 3, 8, 8])"),
    ("image height", [img(2, 3, 9, 8), tok(2, 5)], "input 'image': dim 2 expected 8, got 9"),
    ("image width", [img(2, 3, 8, 7), tok(2, 5)], "input 'image': dim 3 expected 8, got 7"),
    ("image NHWC", [img(2, 8, 8, 3), tok(2, 5)], "looks like channels-last (NHWC) data for an NCHW model"),
    ("batch disagrees", [img(2, 3, 8, 8), tok(3, 5)], "input 'tokens': dim 0 (batch) is 3, but input 'image' has batch = 2"),
    ("no inputs", [], "expects 2 inputs (image, tokens), got 0"),
    ("one input", [img(2, 3, 8, 8)], "expects 2 inputs (image, tokens), got 1"),
    ("three inputs", [img(2, 3, 8, 8), tok(2, 5), tok(2, 5)], "expects 2 inputs (image, tokens), got 3"),
    ("swapped order", [tok(2, 5), img(2, 3, 8, 8)], "input 'image': expected dtype float32, got int64"),
    ("name missing", {"image": img(2, 3, 8, 8)}, "missing 'tokens'"),
    ("name unknown", {"image": img(2, 3, 8, 8), "tokens": tok(2, 5), "mask": tok(2, 5)}, "unknown 'mask'"),
    ("name misspelled", {"imgae": img(2, 3, 8, 8), "tokens": tok(2, 5)}, "missing 'image'; unknown 'imgae'"),
]
BINDING_ONLY = [
    ("sparse", [img(2, 3, 8, 8).to_sparse(), tok(2, 5)], "input 'image': expected a dense tensor"),
    ("meta device", [torch.empty(2, 3, 8, 8, device="meta"), tok(2, 5)], "input 'image': expected a tensor on cpu or cuda, got one on meta"),
    ("not a tensor", ["pixels", tok(2, 5)], "input 'image': expected a torch.Tensor or an array with __dlpack__, got str"),
    ("None", [None, tok(2, 5)], "input 'image': got None (an undefined tensor), but it is required"),
    ("numpy float64 by name", {"image": np.zeros((2, 3, 8, 8)), "tokens": tok(2, 5)}, "input 'image': expected dtype float32, got float64"),
]


@pytest.mark.parametrize("case, inputs, message", TENSOR_CASES + BINDING_ONLY, ids=[c[0] for c in TENSOR_CASES + BINDING_ONLY])
def test_binding(battery_model, case, inputs, message):
    _, path = battery_model
    model = torchport.NativeModel(path)
    with pytest.raises(torchport.BadInputError) as info:
        model.run(inputs) if isinstance(inputs, dict) else model.run(*inputs)
    assert message in str(info.value), f"{case}: {info.value}"
    out = model.run(img(4, 3, 8, 8), tok(4, 7))
    assert [o.shape for o in out] == [(4, 4), (4, 4)], "the model keeps working"


@pytest.mark.parametrize("case, inputs, message", TENSOR_CASES, ids=[c[0] for c in TENSOR_CASES])
def test_binary(battery_model, tmp_path, case, inputs, message):
    _, path = battery_model
    torch.save(inputs, tmp_path / "in.pt")
    proc = run_binary("predict", str(path), "--input", str(tmp_path / "in.pt"), "--output", str(tmp_path / "out.pt"))
    assert proc.returncode == 4, f"{case}: exit {proc.returncode}: {proc.stderr}"
    assert message in proc.stderr, f"{case}: {proc.stderr}"
    assert not (tmp_path / "out.pt").exists()


class Exploit:
    """Unpickling this with pickle would run a shell command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _file_cases(tmp_path, artifact):
    t = img(2, 3, 8, 8)
    cases = {
        "empty file": (b"", "is empty"),
        "random bytes": (os.urandom(256), "is not a tensor file written by torch.save"),
        "text": (b"image,tokens\n1,2\n", "is not a tensor file written by torch.save"),
        "plain pickle": (pickle.dumps([1, 2, 3]), "is not a tensor file written by torch.save"),
        "a zip of something else": (None, "is not a tensor file written by torch.save"),
        "the model artifact": (artifact.read_bytes(), "input file"),
    }
    objects = {
        "an int": (3, "holds a Int; expected a tensor"),
        "a string": ("image", "holds a String; expected a tensor"),
        "list with a string": ([t, "tokens"], "item 1 is a String, expected a tensor"),
        "nested list": ([[t, tok(2, 5)]], "item 0 is a GenericList, expected a tensor"),
        "dict with int keys": ({0: t, 1: tok(2, 5)}, "dict keys must be input names (strings)"),
        "dict with a number": ({"image": t, "tokens": 5}, "entry 'tokens' is a Int, expected a tensor"),
        "dict missing a name": ({"image": t}, "missing 'tokens'"),
        "code execution attempt": (Exploit(str(tmp_path / "pwned")), "input file"),
    }
    files = {}
    for name, (content, message) in cases.items():
        p = tmp_path / (name.replace(" ", "_") + ".pt")
        if content is None:
            with zipfile.ZipFile(p, "w") as z:
                z.writestr("notes/readme.txt", "hello")
        else:
            p.write_bytes(content)
        files[name] = (p, message)
    for name, (obj, message) in objects.items():
        p = tmp_path / (name.replace(" ", "_") + ".pt")
        torch.save(obj, p)
        files[name] = (p, message)
    files["a directory"] = (tmp_path, "is a directory")
    files["a missing file"] = (tmp_path / "missing.pt", "does not exist")
    return files


def test_input_files_through_the_binary(battery_model, tmp_path):
    _, path = battery_model
    files = _file_cases(tmp_path, path)
    assert len(files) >= 16
    for case, (file, message) in files.items():
        proc = run_binary("predict", str(path), "--input", str(file), "--output", str(tmp_path / "out.pt"))
        assert proc.returncode == 4, f"{case}: exit {proc.returncode}: {proc.stderr}"
        assert message in proc.stderr, f"{case}: {proc.stderr}"
        assert str(file) in proc.stderr or "missing 'tokens'" in proc.stderr, f"{case}: names the file: {proc.stderr}"
    assert not (tmp_path / "pwned").exists(), "the input file ran code"
    assert not (tmp_path / "out.pt").exists()


def test_input_files_through_the_binding(battery_model, tmp_path):
    from torchport.native import read_tensor_file

    _, path = battery_model
    for case, (file, message) in _file_cases(tmp_path, path).items():
        if case == "dict missing a name":
            continue  # a valid file; the model, not the reader, refuses it
        with pytest.raises(torchport.BadInputError, match="input file") as info:
            read_tensor_file(file)
        assert message in str(info.value), f"{case}: {info.value}"
    assert not (tmp_path / "pwned").exists()
    ok = tmp_path / "ok.pt"
    torch.save({"image": img(1, 3, 8, 8), "tokens": tok(1, 2)}, ok)
    named = read_tensor_file(ok)
    assert set(named) == {"image", "tokens"}
    assert [o.shape for o in torchport.NativeModel(path).run(named)] == [(1, 4), (1, 4)]


def test_nan_and_inf_rejected_only_when_asked(battery_model):
    _, path = battery_model
    bad = img(2, 3, 8, 8)
    bad[0, 0, 0, 0] = float("nan")
    assert torchport.NativeModel(path).run(bad, tok(2, 5))[0].isnan().any()
    checked = torchport.NativeModel(path, check_nan=True)
    with pytest.raises(torchport.BadInputError, match="input 'image': holds NaN or Inf"):
        checked.run(bad, tok(2, 5))
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(torchport.BadInputError, match="NaN or Inf"):
        checked.run(bad, tok(2, 5))
    assert not checked.run(img(2, 3, 8, 8), tok(2, 5))[0].isnan().any()


def test_binary_nan_check(battery_model, tmp_path):
    _, path = battery_model
    bad = img(2, 3, 8, 8)
    bad[1, 2, 3, 4] = float("inf")
    torch.save([bad, tok(2, 5)], tmp_path / "in.pt")
    args = ["predict", str(path), "--input", str(tmp_path / "in.pt"), "--output", str(tmp_path / "out.pt")]
    assert run_binary(*args).returncode == 0
    proc = run_binary(*args, "--check-nan", "yes")
    assert proc.returncode == 4 and "input 'image': holds NaN or Inf" in proc.stderr
    assert run_binary(*args, "--check-nan", "maybe").returncode == 2
