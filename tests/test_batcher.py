"""torchport::Batcher through the binding: batched results equal unbatched ones
bit for bit, a full queue is refused at once, a model without a shared batch
dimension is refused, a bad request fails alone; torchport-run serve-bench runs."""

from __future__ import annotations

import json
import threading

import pytest
import torch

import torchport
from torchport.errors import BadInputError, BadOptionError, ModelRuntimeError
from torchport.native import Batcher, NativeModel

from conftest import CNN, run_binary


@pytest.fixture(scope="module")
def cnn_artifact(tmp_path_factory):
    torch.manual_seed(0)
    return torchport.export(CNN().eval(), torch.rand(2, 3, 16, 16), tmp_path_factory.mktemp("batcher") / "cnn.pt")


def test_batched_rows_are_the_batched_call_bit_for_bit(cnn_artifact):
    model = NativeModel(cnn_artifact)
    # The worker waits until 16 rows are there (or 10 s): the 16 requests make one call.
    batcher = Batcher(model, max_batch=16, max_delay_ms=10_000)
    requests = [torch.rand(1, 3, 16, 16) for _ in range(16)]
    futures = [batcher.submit(x) for x in requests]
    results = [f.result()[0] for f in futures]
    assert batcher.batches == 1 and batcher.requests == 16
    (whole,) = model.run(torch.cat(requests))
    for i, got in enumerate(results):
        assert got.shape == (1, 5) and torch.equal(got, whole[i : i + 1]), i
        # Against the request run alone, conv and matrix kernels sum in another
        # order at batch 1 (about 1e-8 here): equal within float32 rounding.
        torch.testing.assert_close(got, model.run(requests[i])[0])


class Affine(torch.nn.Module):
    """Row-wise arithmetic only: no kernel whose summation order depends on the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x * 1.5 - 0.25).sum(dim=1, keepdim=True) + x.amax(dim=1, keepdim=True)


def test_batched_results_equal_unbatched_calls(tmp_path):
    model = NativeModel(torchport.export(Affine(), torch.rand(2, 7), tmp_path / "affine.pt"))
    batcher = Batcher(model, max_batch=8, max_delay_ms=10_000)
    requests = [torch.rand(1, 7) for _ in range(8)]
    futures = [batcher.submit(x) for x in requests]
    for x, future in zip(requests, futures):
        assert torch.equal(future.result()[0], model.run(x)[0])
    assert batcher.batches == 1


def test_concurrent_threads(cnn_artifact):
    model = NativeModel(cnn_artifact)
    batcher = Batcher(model, max_batch=8, max_delay_ms=5)
    inputs = [torch.rand(1, 3, 16, 16) for _ in range(32)]
    results: dict[int, torch.Tensor] = {}

    def client(i: int) -> None:
        for k in range(i, len(inputs), 8):
            results[k] = batcher.run(inputs[k])[0]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, x in enumerate(inputs):
        torch.testing.assert_close(results[k], model.run(x)[0])


def test_full_queue_is_refused_at_once(cnn_artifact):
    batcher = Batcher(NativeModel(cnn_artifact), max_batch=16, max_delay_ms=2000, max_queue=2)
    x = torch.rand(1, 3, 16, 16)
    first, second = batcher.submit(x), batcher.submit(x)
    with pytest.raises(ModelRuntimeError, match=r"is full: 2 requests already wait \(max_queue\)"):
        batcher.submit(x)
    assert torch.equal(first.result()[0], second.result()[0])


def test_bad_request_fails_alone(cnn_artifact):
    batcher = Batcher(NativeModel(cnn_artifact), max_batch=16, max_delay_ms=200)
    good = batcher.submit(torch.rand(1, 3, 16, 16))
    bad = batcher.submit(torch.rand(1, 4, 16, 16))  # 4 channels: the model's conv refuses it
    assert good.result()[0].shape == (1, 5)
    with pytest.raises((BadInputError, ModelRuntimeError)):
        bad.result()
    with pytest.raises(BadInputError, match="1 to max_batch"):
        batcher.submit(torch.rand(17, 3, 16, 16))


def test_model_without_batch_dimension_is_refused(tmp_path):
    path = torchport.export(CNN().eval(), torch.rand(2, 3, 16, 16), tmp_path / "fixed.pt", dynamic_dims={})
    with pytest.raises(BadOptionError, match=r"cannot be batched: input 'image' has a fixed first dimension 2"):
        Batcher(NativeModel(path))
    with pytest.raises(BadOptionError, match="max_batch"):
        Batcher(NativeModel(path), max_batch=0)


def test_serve_bench(cnn_artifact):
    proc = run_binary("serve-bench", str(cnn_artifact), "--clients", "4", "--requests", "20", "--max-batch", "4")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for side in ("unbatched", "batched"):
        assert report[side]["requests_per_s"] > 0 and report[side]["p99_ms"] >= report[side]["p50_ms"]
    assert report["clients"] == 4 and 1 <= report["batched"]["mean_batch"] <= 4
