"""Rules that live once, in the C++ runtime, and are used from Python through
the binding: the manifest schema (export refuses what the runtime would),
the dtype list, the exit-code table, output ordering and comparison."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import torchport
from torchport import _native
from torchport.errors import _UNAVAILABLE_EXIT_CODE, TorchportError, exit_code_of


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


@pytest.mark.parametrize("dtype_name", _native.supported_dtypes())
def test_every_dtype_the_runtime_lists_exports_and_runs(tmp_path, dtype_name):
    dtype = getattr(torch, dtype_name)
    x = torch.ones(2, 3).to(dtype)
    path = torchport.export(Identity(), x, tmp_path / f"{dtype_name}.pt")
    native = torchport.NativeModel(path)
    assert native.manifest.inputs[0].dtype == dtype_name
    assert native.selfcheck()["ok"]
    (y,) = native.run(x)
    assert y.dtype == dtype and torch.equal(y.view(torch.uint8), x.view(torch.uint8))


@pytest.mark.parametrize(
    "make, error, phrase",
    [
        (lambda: (Identity(), torch.ones(2, 2).to(torch.uint16), {}),
         torchport.ExportError, "dtype 'uint16' is not supported; supported: float32"),
        (lambda: (Identity(), torch.ones(2, 2).to(torch.float8_e4m3fn), {}),
         torchport.ExportError, "dtype 'float8_e4m3fn' is not supported"),
        (lambda: (Identity(), torch.ones(2, 2), {"metadata": {"threshold": float("nan")}}),
         torchport.ExportError, "NaN or Infinity"),
        (lambda: (Identity(), torch.ones(2, 2), {"metadata": {"limit": float("inf")}}),
         torchport.ExportError, "NaN or Infinity"),
        (lambda: (Identity(), torch.ones(2, 2), {"metadata": {"deep": json.loads("[" * 80 + "]" * 80)}}),
         torchport.ExportError, "levels deep"),
        (lambda: (Identity(), torch.ones(2, 2), {"input_names": ["bad\nname"]}),
         torchport.ExportError, "control character"),
        (lambda: (Identity(), torch.ones(2, 2), {"input_names": ["n" * 300]}),
         torchport.ExportError, "1 to 256 bytes"),
        (lambda: (Identity(), torch.ones(2, 2), {"dynamic_dims": {"x": {0: "b\tatch"}}}),
         torchport.ExportError, "control character"),
        (lambda: (Identity(), torch.ones(2, 2), {"metadata": {"f": object()}}),
         torchport.BadOptionError, "JSON-serialisable"),
    ],
    ids=["uint16", "float8", "NaN metadata", "Infinity metadata", "deep metadata", "control character", "long name",
         "dim name", "object metadata"],
)
def test_export_refuses_what_the_runtime_would_refuse(tmp_path, make, error, phrase):
    model, x, kwargs = make()
    with pytest.raises(error, match=phrase.replace("(", r"\(")):
        torchport.export(model, x, tmp_path / "m.pt", **kwargs)
    assert not (tmp_path / "m.pt").exists(), "export wrote a file the runtime refuses"
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_forward_the_runtime_cannot_call_is_refused_at_export(tmp_path):
    class TakesInt(nn.Module):
        def forward(self, x: torch.Tensor, k: int = 2) -> torch.Tensor:
            return x * k

    class TakesList(nn.Module):
        def forward(self, x: torch.Tensor, k: list[int] = [2]) -> torch.Tensor:  # noqa: B006
            return x * k[0]

    # An int argument is carried: recorded with its value, passed on every call.
    path = torchport.export(TakesInt(), torch.ones(2, 2), tmp_path / "int.pt", method="script")
    assert torchport.read_manifest(path).constants == {"k": 2}
    assert torch.equal(torchport.NativeModel(path).run(torch.ones(3, 2))[0], torch.full((3, 2), 2.0))
    # A list is not: refused at export, naming the argument, and nothing is written.
    with pytest.raises(torchport.BadOptionError, match="argument 'k' is defaulted to a list"):
        torchport.export(TakesList(), torch.ones(2, 2), tmp_path / "m.pt", method="script")
    assert not (tmp_path / "m.pt").exists()


def test_inspect_read_manifest_and_the_runtime_agree(tmp_path):
    path = torchport.export(Identity(), torch.ones(2, 3), tmp_path / "m.pt", metadata={"labels": ["a"]})
    from_python = torchport.read_manifest(path)
    from_runtime = torchport.NativeModel(path).manifest
    assert from_python == from_runtime
    assert json.loads(from_python.to_json()) == json.loads(_native.inspect(str(path)).manifest.to_json())
    assert from_python.metadata == {"labels": ["a"]}


def test_exit_code_table_is_the_runtimes():
    table = dict(_native.EXIT_CODES)
    assert {cls.kind for cls in TorchportError.__subclasses__()} | {"runtime"} <= set(table)
    for cls in TorchportError.__subclasses__():
        assert cls("x").exit_code == table[cls.kind] == _native.exit_code(cls.kind)
    # The one value Python must know without the extension, and it is the table's.
    assert table["unavailable"] == _UNAVAILABLE_EXIT_CODE
    # One code per kind, except that a missing artifact and a broken one share 3.
    assert len({c for k, c in table.items() if k != "not_found"}) == len(table) - 1
    assert 1 not in table.values() and 0 not in table.values() and _native.EXIT_MISMATCH == 1
    assert exit_code_of("bad_input") == 4


def test_comparison_is_the_runtimes():
    a = torch.tensor([1.0, 2.0, float("nan")])
    b = torch.tensor([1.0, 2.0 + 1e-6, float("nan")])
    (exact,) = _native.compare_outputs(["y"], [a], [a])
    assert exact.bit_exact and exact.ok
    (close,) = _native.compare_outputs(["y"], [a], [b], atol=1e-5)
    assert not close.bit_exact and close.ok and math.isclose(close.max_abs_diff, 1e-6, rel_tol=0.2)
    (far,) = _native.compare_outputs(["y"], [a], [b])
    assert not far.ok
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(torchport.BadOptionError, match="atol"):
            _native.compare_outputs(["y"], [a], [a], atol=bad)
    with pytest.raises(torchport.BadOptionError, match="atol"):
        torchport.verify("unused.pt", atol=float("nan"))
