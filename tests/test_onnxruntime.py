"""ONNX models (.onnx) in the C++ runtime: its ONNX Runtime backend (loaded at
run time), behind the same Model API, torchport-run, the binding and verify.

The MLP and CNN are exported once per session; the dtype cases are one-node
graphs built with onnx.helper (no export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import torchport
from conftest import CASES, MLP, run_binary, run_cli
from torchport.errors import exit_code_of

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

CNN_CASE = next(c for c in CASES if c.name == "cnn_bn")


@pytest.fixture(scope="session")
def mlp_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = MLP().eval()
    path = torchport.export(model, torch.randn(3, 6), tmp_path_factory.mktemp("onnx") / "mlp.onnx", format="onnx",
                            metadata={"labels": ["a", "b", "c"]})
    return model, path


@pytest.fixture(scope="session")
def cnn_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = CNN_CASE.build().eval()
    path = torchport.export(model, CNN_CASE.example(3), tmp_path_factory.mktemp("onnx") / "cnn.onnx", format="onnx")
    return model, path


def graph_file(folder: Path, name: str, elem: int, op: str = "Identity", shape=("N", 3)) -> Path:
    """A one-node ONNX model y = op(x), no torchport metadata."""
    x = helper.make_tensor_value_info("x", elem, list(shape))
    y = helper.make_tensor_value_info("y", elem, list(shape))
    model = helper.make_model(helper.make_graph([helper.make_node(op, ["x"], ["y"])], name, [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_an_onnx_export_runs_in_the_cpp_runtime_with_its_manifest_and_golden(mlp_onnx):
    model, path = mlp_onnx
    native = torchport.NativeModel(path, threads=1)
    assert native.format == "onnx"
    assert native.manifest.format == "onnx" and native.manifest.metadata["labels"] == ["a", "b", "c"]
    assert [s.name for s in native.manifest.inputs] == ["x"]
    report = native.selfcheck()
    assert report["ok"], report
    x = torch.randn(5, 6)
    (y,) = native.run(x)
    torch.testing.assert_close(y, model(x).detach(), atol=1e-5, rtol=1e-4)
    (named,) = native.run(*native.order_inputs({"x": x}))  # the Python face of Model::run_named's ordering
    assert torch.equal(named, y)
    with pytest.raises(torchport.BadInputError, match="unknown"):
        native.order_inputs({"x": x, "extra": x})
    inputs, outputs = native.golden()
    torch.testing.assert_close(native.run(*inputs)[0], outputs[0], atol=1e-5, rtol=1e-4)


def test_the_cnn_matches_eager_and_onnxruntime_python(cnn_onnx):
    import onnxruntime as ort

    model, path = cnn_onnx
    (x,) = CNN_CASE.example(4)
    (ours,) = torchport.NativeModel(path, threads=1).run(x)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (theirs,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert torch.equal(ours, torch.from_numpy(theirs)), "the same ORT graph on the same bytes must agree exactly"
    torch.testing.assert_close(ours, model(x).detach(), atol=1e-5, rtol=1e-4)


def test_the_contract_is_checked_before_onnxruntime_runs(mlp_onnx):
    _, path = mlp_onnx
    native = torchport.NativeModel(path)
    with pytest.raises(torchport.BadInputError, match=r"input 'x'.*dim 1"):
        native.run(torch.randn(2, 7))
    with pytest.raises(torchport.BadInputError, match="float32"):
        native.run(torch.randn(2, 6, dtype=torch.float64))
    with pytest.raises(torchport.BadInputError, match="expects 1 input"):
        native.run(torch.randn(2, 6), torch.randn(2, 6))
    (y,) = native.run(torch.randn(2, 6))  # still usable
    assert y.shape == (2, 3)


@pytest.mark.parametrize("elem,dtype", [
    (TensorProto.FLOAT, torch.float32), (TensorProto.DOUBLE, torch.float64), (TensorProto.INT64, torch.int64),
    (TensorProto.INT32, torch.int32), (TensorProto.BOOL, torch.bool), (TensorProto.UINT8, torch.uint8),
    (TensorProto.INT8, torch.int8), (TensorProto.FLOAT16, torch.float16),
])
def test_every_supported_dtype_goes_in_and_out_unchanged(tmp_path, elem, dtype):
    path = graph_file(tmp_path, f"identity_{elem}", elem)
    native = torchport.NativeModel(path)
    assert native.manifest.inputs[0].dtype == str(dtype).removeprefix("torch.")
    x = (torch.rand(4, 3) * 100).to(dtype)
    (y,) = native.run(x)
    assert y.dtype == dtype and torch.equal(y, x)
    y.zero_()  # the output owns its memory: editing it changes neither the input nor the next call
    assert torch.equal(native.run(x)[0], x)


def test_an_unsupported_dtype_is_refused_by_name(tmp_path):
    path = graph_file(tmp_path, "strings", TensorProto.STRING)
    with pytest.raises(torchport.BadArtifactError, match="ONNX type string"):
        torchport.NativeModel(path)


def test_empty_batch_and_concurrent_calls(tmp_path):
    native = torchport.NativeModel(graph_file(tmp_path, "relu", TensorProto.FLOAT, op="Relu"))
    (y,) = native.run(torch.empty(0, 3))
    assert y.shape == (0, 3)
    xs = [torch.randn(8, 3) for _ in range(8)]
    results: dict[int, torch.Tensor] = {}

    def work(i):
        for _ in range(20):
            results[i] = native.run(xs[i])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, x in enumerate(xs):
        assert torch.equal(results[i], x.relu())


def test_graph_optimisation_levels(mlp_onnx):
    _, path = mlp_onnx
    x = torch.randn(3, 6)
    ref = torchport.NativeModel(path).run(x)[0]
    for level in ("all", "extended", "basic", "none"):
        m = torchport.NativeModel(path, onnx_optimization=level, threads=1)
        assert m.options.onnx_optimization == level
        torch.testing.assert_close(m.run(x)[0], ref, atol=1e-5, rtol=1e-4)
    with pytest.raises(torchport.BadOptionError, match=r"onnx_optimization: expected .*got \"fastest\""):
        torchport.NativeModel(path, onnx_optimization="fastest")


def test_torchport_run_info_predict_selfcheck_and_bench(mlp_onnx, tmp_path):
    _, path = mlp_onnx
    info = run_binary("info", str(path))
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["format"] == "onnx"
    assert run_binary("selfcheck", str(path), "--threads", "1").returncode == 0
    src, dst = tmp_path / "in.pt", tmp_path / "out.pt"
    x = torch.randn(4, 6)
    torch.save([x], src)
    proc = run_binary("predict", str(path), "--input", str(src), "--output", str(dst), "--onnx-optimization", "basic")
    assert proc.returncode == 0, proc.stderr
    from torchport.native import read_tensor_file

    out = read_tensor_file(dst)
    torch.testing.assert_close(out[0] if isinstance(out, list) else out, torchport.NativeModel(path).run(x)[0])
    bench = run_binary("bench", str(path), "--iters", "5", "--warmup", "1")
    assert bench.returncode == 0, bench.stderr
    assert "--onnxruntime" in run_binary("info", "--help").stdout


def test_verify_has_a_native_and_a_binary_row(mlp_onnx):
    model, path = mlp_onnx
    report = torchport.verify(path, model=model)
    assert report.ok, str(report)
    assert {r.runtime for r in report.rows} >= {"onnxruntime", "native", "binary"}


def _unavailable(env_value: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    path = graph_file(tmp_path, "relu", TensorProto.FLOAT, op="Relu")
    env = dict(os.environ, TORCHPORT_ONNXRUNTIME=env_value)
    return run_binary("info", str(path), *extra, env=env)


def test_missing_onnxruntime_is_unavailable_naming_the_fix(tmp_path):
    proc = _unavailable(str(tmp_path / "no" / "libonnxruntime.so"), tmp_path)
    assert proc.returncode == exit_code_of("unavailable"), proc.stderr
    assert "TORCHPORT_ONNXRUNTIME" in proc.stderr and "pip install onnxruntime" in proc.stderr
    assert "error[unavailable]" in proc.stderr and "Traceback" not in proc.stderr


def test_a_library_that_is_not_onnxruntime_is_refused(tmp_path):
    import zlib  # noqa: F401 - any shared library will do; libz is everywhere torch is
    libz = next(p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1") if Path(p).exists())
    proc = _unavailable("", tmp_path, "--onnxruntime", libz)
    assert proc.returncode == exit_code_of("unavailable"), proc.stderr
    assert "does not export OrtGetApiBase" in proc.stderr


def test_the_binding_takes_the_library_path(tmp_path):
    """In a fresh process: ONNX Runtime is loaded once per process."""
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    lib = next(capi.glob("libonnxruntime.so*"))
    path = graph_file(tmp_path, "relu", TensorProto.FLOAT, op="Relu")
    code = (f"import torch, torchport; m = torchport.NativeModel({str(path)!r}, onnxruntime={str(lib)!r}); "
            "print(m.run(torch.tensor([[-1.0, 2.0, -3.0]]))[0].tolist())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, TORCHPORT_ONNXRUNTIME=""))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[[0.0, 2.0, 0.0]]"
