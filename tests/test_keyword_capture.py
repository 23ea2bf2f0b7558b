"""Keyword-called models with non-tensor arguments through the torch.export
formats (.pt2, ONNX, .pte): bound like TorchScript's, run by every runtime in
the manifest's input order, and captured no wider than the named dims' bounds."""

from __future__ import annotations

import pytest
import torch

import torchport

SUFFIX = {"aoti": ".pt2", "onnx": ".onnx", "executorch": ".pte"}


class Tagger(torch.nn.Module):
    """Called like a Hugging Face model: ids and mask by keyword, a float and a flag beside them."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask=None, scale: float = 1.0, pool: bool = True):
        h = self.emb(input_ids) * attention_mask.unsqueeze(-1).float() * scale  # (B, T, 8)
        return self.fc(h.mean(1) if pool else h)  # (B, 3)


DYNAMIC = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}


def _needs(fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    if fmt == "executorch":
        pytest.importorskip("executorch")
        from torchport import _native

        if not _native.WITH_EXECUTORCH:
            pytest.skip("the runtime was built without ExecuTorch")


@pytest.fixture(scope="module", params=list(SUFFIX))
def exported(request, tmp_path_factory):
    fmt = request.param
    _needs(fmt)
    torch.manual_seed(0)
    model = Tagger().eval()
    ids, mask = torch.randint(0, 50, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    path = torchport.export(model, None, tmp_path_factory.mktemp(fmt) / f"tagger{SUFFIX[fmt]}",
                            example_kwargs={"input_ids": ids, "attention_mask": mask, "scale": 2.0},
                            dynamic_dims=DYNAMIC, dim_bounds={"seq": (1, 64)}, format=fmt)
    return fmt, model, path


def test_the_contract_is_torchscripts(exported):
    fmt, _, path = exported
    m = torchport.read_manifest(path)
    assert m.format == fmt
    assert m.input_names == ["input_ids", "attention_mask"]
    assert m.constants == {"scale": 2.0, "pool": True}
    assert m.dims == {"seq": {"min": 1, "max": 64}}


def test_every_runtime_matches_eager_at_other_sizes(exported):
    _, model, path = exported
    ids, mask = torch.randint(0, 50, (3, 11)), torch.ones(3, 11, dtype=torch.long)
    mask[0, 5:] = 0
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask, scale=2.0)
    got = torchport.NativeModel(path).run(ids, mask)[0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    by_name = torchport.NativeModel(path).run({"attention_mask": mask, "input_ids": ids})[0]
    torch.testing.assert_close(by_name, expected, atol=1e-5, rtol=1e-4)
    report = torchport.verify(path, model=model, inputs=[ids, mask])
    assert report.ok, report


def test_a_dim_past_its_bound_is_refused_naming_it(exported):
    _, _, path = exported
    with pytest.raises(torchport.BadInputError, match=r"input 'input_ids': dim 1 \(seq\) is 65, expected 1 to 64"):
        torchport.NativeModel(path).run(torch.randint(0, 50, (1, 65)), torch.ones(1, 65, dtype=torch.long))


def test_an_executorch_plan_is_sized_from_the_bound_not_the_default(exported):
    fmt, _, path = exported
    if fmt != "executorch":
        pytest.skip("ExecuTorch plans memory; the other formats have no plan")
    from torchport.formats import COMPILE_KEY, EXECUTORCH_DIM_MAX

    bounds = torchport.read_manifest(path).metadata[COMPILE_KEY]["input_bounds"]
    assert [b[1] for b in bounds] == [64, 64] and EXECUTORCH_DIM_MAX > 64, bounds
