"""Every memory layout a caller can hand the binding gives the numbers of a
contiguous copy, or a clear BadInputError; and nothing the runtime returns
shares memory with the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torchport


class Affine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * 2.0


class ComplexScale(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * (1.0 + 2.0j)


class WritesItsInput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.add_(1.0)
        return x * 2.0


class Leaky(nn.Module):
    """Returns its own parameter, a view of its buffer, and its input."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))
        self.register_buffer("state", torch.arange(4.0))

    def forward(self, x: torch.Tensor):
        return x * 2.0, self.weight, self.state[1:3], x


@pytest.fixture(scope="module")
def affine(tmp_path_factory):
    torch.manual_seed(0)
    model = Affine().eval()
    path = torchport.export(model, torch.rand(2, 4), tmp_path_factory.mktemp("layouts") / "affine.pt")
    return model, torchport.NativeModel(path)


def expected(model, array) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array.contiguous()
    with torch.inference_mode():
        return model(x.resolve_conj().resolve_neg())


rng = np.random.default_rng(0)
BASE = rng.random((6, 8), dtype=np.float32)
NUMPY_LAYOUTS = {
    "reversed rows": BASE[::-1, :4],
    "reversed both": BASE[::-1, ::-1][:, :4],
    "negative stride, then step": BASE[::-2, 1::2],
    "Fortran order": np.asfortranarray(BASE[:, :4]),
    "transposed": np.ascontiguousarray(BASE[:4, :6]).T,
    "every third row": np.ascontiguousarray(np.repeat(BASE[:, :4], 3, axis=0))[::3],
    "broadcast (stride 0)": np.broadcast_to(BASE[0, :4], (5, 4)),
    "zero rows": BASE[:0, :4],
    "zero rows reversed": BASE[:0, :4][::-1],
    "one row": BASE[2:3, :4],
}


@pytest.mark.parametrize("name", NUMPY_LAYOUTS)
def test_numpy_layouts_give_the_numbers_of_a_contiguous_copy(affine, name):
    model, native = affine
    array = NUMPY_LAYOUTS[name]
    (got,) = native.run(array)
    assert torch.equal(got, expected(model, array)), name


def test_read_only_arrays_run_and_stay_untouched(tmp_path):
    path = torchport.export(WritesItsInput(), torch.rand(2, 4), tmp_path / "writes.pt")
    native = torchport.NativeModel(path)
    frozen = np.frombuffer(bytes(np.arange(8, dtype=np.float32).data), dtype=np.float32).reshape(2, 4)
    assert not frozen.flags.writeable
    (got,) = native.run(frozen)  # the model writes into its input: it gets a copy, not read-only memory
    assert torch.equal(got, (torch.arange(8.0).reshape(2, 4) + 1) * 2)
    assert np.array_equal(frozen, np.arange(8, dtype=np.float32).reshape(2, 4))
    locked = np.arange(8, dtype=np.float32).reshape(2, 4)
    locked.flags.writeable = False
    (got,) = native.run(locked)
    assert np.array_equal(locked, np.arange(8, dtype=np.float32).reshape(2, 4))


def _torch_layouts():
    x = torch.rand(5, 4)
    wide = torch.rand(5, 12)
    return {
        "transposed": torch.rand(4, 5).t(),
        "strided view": wide[:, ::3],
        "storage offset": torch.rand(9, 4)[4:],
        "expanded (stride 0)": torch.rand(1, 4).expand(5, 4),
        "as_strided odd strides": torch.rand(64).as_strided((5, 4), (7, 3), 2),
        "negative bit": (-x)._neg_view(),
        "requires grad": torch.rand(5, 4, requires_grad=True),
        "zero rows": torch.rand(0, 4),
        "channels in the middle": torch.rand(5, 4, 2)[:, :, 0],
    }


@pytest.mark.parametrize("name", list(_torch_layouts()))
def test_torch_layouts_give_the_numbers_of_a_contiguous_copy(affine, name):
    model, native = affine
    t = _torch_layouts()[name]
    (got,) = native.run(t)
    assert torch.equal(got, expected(model, t.detach())), name


def test_conjugate_bit_is_resolved(tmp_path):
    path = torchport.export(ComplexScale(), torch.randn(2, 3, dtype=torch.complex64), tmp_path / "c.pt")
    z = torch.randn(4, 3, dtype=torch.complex64)
    (got,) = torchport.NativeModel(path).run(z.conj())
    assert z.conj().is_conj()
    assert torch.equal(got, z.conj().resolve_conj() * (1.0 + 2.0j))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: torch.rand(1, 4).expand(2_000_000_000_000, 4), "cannot be allocated"),
        (lambda: np.arange(20, dtype=">f4").reshape(5, 4), "native byte order"),
        (lambda: np.zeros((5, 4), dtype=[("a", "<f4")]), "cannot be passed to the runtime"),
        (lambda: np.array([[object()] * 4] * 5), "cannot be passed to the runtime"),
        (lambda: torch.rand(5, 4, device="meta"), "expected a tensor on cpu or cuda, got one on meta"),
        (lambda: torch.rand(5, 4).to_sparse(), "expected a dense tensor"),
        (lambda: [[0.0] * 4] * 5, "expected a torch.Tensor or an array with __dlpack__, got list"),
        (lambda: np.array(1.0, dtype=np.float32), "expected 2 dimensions"),
        (lambda: torch.rand(5, 4, dtype=torch.float64), "expected dtype float32, got float64"),
    ],
    ids=["expanded past memory", "big-endian", "structured", "object", "meta", "sparse", "list", "numpy scalar",
         "wrong dtype"],
)
def test_layouts_the_runtime_cannot_take_are_named(affine, make, message):
    _, native = affine
    with pytest.raises(torchport.BadInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        native.run(make())
    assert native.run(torch.rand(2, 4))[0].shape == (2, 3)  # still usable


def test_outputs_never_share_memory_with_the_model(tmp_path):
    path = torchport.export(Leaky(), torch.rand(3), tmp_path / "leaky.pt", dynamic_dims={})
    native = torchport.NativeModel(path)
    x = torch.rand(3)
    first = native.run(x)
    for t in first:
        t.add_(100.0)
    assert torch.equal(x, x.clone()) and not any(t.data_ptr() == x.data_ptr() for t in first)
    second = native.run(x)
    assert torch.equal(second[1], torch.ones(3))
    assert torch.equal(second[2], torch.tensor([1.0, 2.0]))
    assert torch.equal(second[3], x)
    assert native.selfcheck()["ok"]


def test_golden_and_example_inputs_are_copies(tmp_path):
    path = torchport.export(Affine(), torch.rand(2, 4), tmp_path / "a.pt")
    native = torchport.NativeModel(path)
    inputs, outputs = native.golden()
    inputs[0].add_(1.0)
    outputs[0].add_(1.0)
    native._model.example_inputs()[0].add_(1.0)
    assert native.selfcheck()["ok"], "editing golden() or example_inputs() changed what selfcheck compares"
