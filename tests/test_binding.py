"""torchport._native through NativeModel: zero-copy exchange, the GIL released
around model calls, and a stub that matches the module."""

from __future__ import annotations

import ast
import re
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

import torchport
from torchport import _native


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_tensors_cross_without_copies(tmp_path):
    path = torchport.export(Identity(), torch.randn(2, 3), tmp_path / "id.pt")
    x = torch.randn(4, 3)
    (y,) = torchport.NativeModel(path).run(x)
    # The model returns its input: through DLPack both ways, it is the same memory.
    assert y.data_ptr() == x.data_ptr()


def test_concurrent_calls_from_python_threads(mlp_artifact):
    model, path = mlp_artifact
    native = torchport.NativeModel(path)
    inputs = [torch.randn(1 + i % 5, 6) for i in range(40)]
    with torch.inference_mode():
        expected = [model(x) for x in inputs]
    mismatches, errors = [], []

    def worker(offset: int) -> None:
        for i in range(len(inputs)):
            k = (i + offset) % len(inputs)
            try:
                if not torch.equal(native.run(inputs[k])[0], expected[k]):
                    mismatches.append(k)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not mismatches


def test_golden_selfcheck_benchmark_and_warmup(mlp_artifact):
    _, path = mlp_artifact
    native = torchport.NativeModel(path, warmup_runs=2)
    assert native.warmup_ms > 0
    inputs, outputs = native.golden()
    g_in, g_out = torchport.read_golden(path)
    assert torch.equal(inputs[0], g_in[0]) and torch.equal(outputs[0], g_out[0])
    assert native.selfcheck()["ok"]
    bench = native.benchmark(iters=10, warmup=1)
    assert bench["iters"] == 10 and bench["p50_ms"] > 0
    assert native.manifest.metadata["labels"] == ["a", "b", "c"]


def test_bad_device_and_threads_are_option_errors(mlp_artifact):
    import pytest

    _, path = mlp_artifact
    with pytest.raises(torchport.BadOptionError, match="device"):
        torchport.NativeModel(path, device="tpu")
    with pytest.raises(torchport.BadOptionError, match="threads"):
        torchport.NativeModel(path, threads=-2)


def _doc_params(doc: str) -> tuple[list[str], list[str]]:
    """Positional and keyword-only parameter names from a pybind11 signature line."""
    sig = doc.splitlines()[0]
    inner = sig[sig.index("(") + 1 : sig.rindex(")")]
    positional, keyword, star = [], [], False
    depth, token = 0, ""
    parts = []
    for ch in inner:
        depth += ch in "[(" ; depth -= ch in "])"
        if ch == "," and depth == 0:
            parts.append(token.strip()); token = ""
        else:
            token += ch
    parts.append(token.strip())
    for p in parts:
        if p == "*":
            star = True
            continue
        name = re.split(r"[:=]", p)[0].strip()
        if name and name != "self":
            (keyword if star else positional).append(name)
    return positional, keyword


def _stub_members(cls: ast.ClassDef) -> tuple[dict, set]:
    methods, props = {}, set()
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        decorators = {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}
        if "property" in decorators:
            props.add(fn.name)
        else:
            skip = 0 if "staticmethod" in decorators else 1
            methods[fn.name] = ([a.arg for a in fn.args.args[skip:]], [a.arg for a in fn.args.kwonlyargs])
    return methods, props


def test_stub_matches_the_module():
    stub = Path(torchport.__file__).with_name("_native.pyi")
    tree = ast.parse(stub.read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    real_classes = {n for n, v in vars(_native).items() if isinstance(v, type) and not n.startswith("_")}
    assert set(classes) == real_classes
    for name, cls in classes.items():
        stub_methods, stub_props = _stub_members(cls)
        real_methods, real_props = {}, set()
        for attr_name, attr in vars(getattr(_native, name)).items():
            if attr_name.startswith("_") and attr_name != "__init__":
                continue
            if attr_name == "__init__" and "__init__" not in stub_methods:
                with pytest.raises(TypeError):  # a class the module returns but does not construct
                    getattr(_native, name)()
                continue
            if isinstance(attr, property):
                real_props.add(attr_name)
            else:
                real_methods[attr_name] = _doc_params(getattr(getattr(_native, name), attr_name).__doc__)
        assert stub_props == real_props, name
        assert stub_methods == real_methods, name
    module_attrs = {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    assert module_attrs <= set(dir(_native))
    stub_functions = {
        fn.name: ([a.arg for a in fn.args.args], [a.arg for a in fn.args.kwonlyargs])
        for fn in tree.body
        if isinstance(fn, ast.FunctionDef)
    }
    real_functions = {
        name: _doc_params(f.__doc__)
        for name, f in vars(_native).items()
        if not name.startswith("_") and callable(f) and not isinstance(f, type)
    }
    assert stub_functions == real_functions
