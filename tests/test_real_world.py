"""Real-world models exported as they come (issue 8): structured outputs,
keyword and optional inputs, non-tensor arguments, custom operators, bounded
and data-dependent dims. Each runs through the binding and torchport-run,
bit-exact against eager at sizes other than the export example; the native
app runs them in tests/test_examples.py."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

import torchport
from torchport.errors import BadInputError, BadOptionError, ExportError
from torchport.exporter import ExportWarning
from torchport.native import NativeModel

from conftest import run_binary, run_cli
from real_world import (IMAGE_DIMS, OPS_LIBRARY, SEQ_DIMS, Detector, Gated, OptionalMask, Segmenter, bert,
                        bert_inputs, gpt2, t5)


def assert_same(got, expected, where="output"):
    """The same structure, with bit-identical tensors."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
        assert got.dtype == expected.dtype and got.shape == expected.shape, f"{where}: {got.shape} vs {expected.shape}"
        assert torch.equal(got, expected), f"{where}: max diff {(got.double() - expected.double()).abs().max()}"
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), f"{where}: keys {list(got)} vs {list(expected)}"
        for k in expected:
            assert_same(got[k], expected[k], f"{where}.{k}")
    else:
        assert type(got) is type(expected) or (isinstance(got, tuple) and isinstance(expected, tuple)), where
        assert len(got) == len(expected), f"{where}: {len(got)} items vs {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, f"{where}.{i}")


def predict(path, inputs, tmp_path, *extra):
    """torchport-run predict, read back with plain torch.load (weights_only)."""
    src, out = tmp_path / "in.pt", tmp_path / "out.pt"
    torch.save(inputs, src)
    proc = run_binary("predict", str(path), "--input", str(src), "--output", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return torch.load(out)


@pytest.fixture(scope="module")
def ops_library():
    assert OPS_LIBRARY.is_file(), f"{OPS_LIBRARY} is missing: build with -DTORCHPORT_BUILD_TESTS=ON (make setup)"
    torch.ops.load_library(str(OPS_LIBRARY))
    return OPS_LIBRARY


def test_segmentation_dict(tmp_path):
    torch.manual_seed(0)
    model = Segmenter().eval()
    path = torchport.export(model, torch.rand(2, 3, 16, 16), tmp_path / "seg.pt", dynamic_dims=IMAGE_DIMS)
    m = torchport.read_manifest(path)
    assert m.schema == 2 and m.export_method == "script"
    assert [(o.name, o.shape) for o in m.outputs] == [("out", ("batch", 3, "height", "width")),
                                                      ("aux", ("batch", 3, "height", "width"))]
    assert m.structure == {"type": "dict", "keys": ["out", "aux"], "items": [0, 1]}
    x = torch.rand(3, 3, 12, 20)  # another batch and size
    with torch.inference_mode():
        expected = model(x)
    assert_same(NativeModel(path).run_structured(x), expected)
    assert_same(NativeModel(path).run_structured({"image": x}), expected)
    assert_same(predict(path, [x], tmp_path), expected)
    proc = run_cli("run", str(path), "--input", str(tmp_path / "in.pt"), "--output", str(tmp_path / "cli.pt"))
    assert proc.returncode == 0, proc.stderr
    assert_same(torch.load(tmp_path / "cli.pt"), expected)  # the torchport command writes the same structure
    report = torchport.verify(path, model=model, inputs=[x])  # output by output, by name
    assert report.bit_exact and {r.output for r in report.rows} == {"out", "aux"}


def blank_threshold(model: Detector) -> float:
    """The score every pixel of a blank image gets: as the threshold, such an
    image keeps no box (keep_above keeps scores strictly above it)."""
    with torch.no_grad():
        return torch.sigmoid(model.score(torch.relu(model.features(torch.zeros(1, 3, 8, 8)))))[0, 0, 0, 0].item()


def test_detection_list_per_batch_element_with_data_dependent_sizes(tmp_path, ops_library):
    torch.manual_seed(0)
    model = Detector().eval()
    model.threshold = blank_threshold(model)
    images = torch.rand(2, 3, 8, 8)
    images[1] = 0  # no detections: [0, 4] boxes
    dims = {"images": {0: "batch", 2: "height", 3: "width"}}
    path = torchport.export(model, images, tmp_path / "det.pt", dynamic_dims=dims)
    m = torchport.read_manifest(path)
    assert m.metadata["torchport.custom_ops"] == ["tp_test::keep_above"]
    assert m.schema == 3  # the list per batch element: older runtimes refuse it by its schema
    assert m.output_names == ["output_*.boxes", "output_*.scores", "output_*.labels"]  # one item, described once
    assert m.structure == {"type": "list", "per": "batch",
                           "item": {"type": "dict", "keys": ["boxes", "scores", "labels"], "items": [0, 1, 2]}}
    boxes = m.outputs[0]
    assert boxes.shape == (None, 4) and boxes.data_dependent == (0,)  # never "batch"
    _, golden = torchport.read_golden(path)
    assert [tuple(t.shape) for t in golden[3:]] == [(0, 4), (0,), (0,)]  # the blank image's
    assert 0 < golden[0].shape[0]

    native = NativeModel(path, libraries=[ops_library])
    for batch in (3, 1):  # other batches than the example's 2
        x = torch.rand(batch, 3, 10, 6)
        x[-1] = 0
        with torch.inference_mode():
            expected = model(x)
        assert len(expected) == batch and expected[-1]["boxes"].shape == (0, 4)
        assert_same(native.run_structured(x), expected)
        assert_same(predict(path, x, tmp_path, "--load-library", str(ops_library)), expected)
        # Output by output, by name, through every runtime, each given the operator library.
        report = torchport.verify(path, model=model, inputs=[x], libraries=[ops_library])
        names = {f"output_{i}.{k}" for i in range(batch) for k in ("boxes", "scores", "labels")}
        assert report.bit_exact and {r.output for r in report.rows} == names
        assert {r.runtime for r in report.rows} == {"torchscript", "native", "binary"}
    proc = run_binary("selfcheck", str(path), "--load-library", str(ops_library))
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"], proc.stdout + proc.stderr
    # Without the library the runtime names the missing op.
    proc = run_binary("info", str(path))
    assert proc.returncode == 3 and "tp_test::keep_above" in proc.stderr
    # Formats that take positional tensors only cannot carry it: refused at export, naming the output.
    with pytest.raises(BadOptionError, match=r"output 'output_\*\.boxes': a list with one item per batch element"):
        torchport.export(model, images, tmp_path / "det.onnx", dynamic_dims=dims, format="onnx")


class Heads(nn.Module):
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x * 2, x.sum(1)]  # two heads, whatever the batch


def test_fixed_list_stays_fixed(tmp_path):
    # As long as the example's batch (2), but it does not follow the batch.
    path = torchport.export(Heads(), torch.rand(2, 3), tmp_path / "heads.pt")
    m = torchport.read_manifest(path)
    assert m.schema == 2 and m.output_names == ["output_0", "output_1"]
    assert m.structure == {"type": "list", "items": [0, 1]}
    x = torch.rand(5, 3)
    assert_same(NativeModel(path).run_structured(x), Heads()(x))


def test_bert_model_output_keyword_inputs_and_bounded_seq(tmp_path):
    model = bert(max_positions=16)
    with pytest.warns(ExportWarning, match="torch.jit.script failed"):
        path = torchport.export(model, None, tmp_path / "bert.pt", example_kwargs=bert_inputs(2, 8),
                                dynamic_dims=SEQ_DIMS)
    m = torchport.read_manifest(path)
    assert m.input_names == ["input_ids", "attention_mask"]
    assert m.output_names == ["last_hidden_state", "pooler_output"]
    assert m.outputs[0].shape == ("batch", "seq", 16) and m.outputs[1].shape == ("batch", 16)
    assert m.dims == {"seq": {"min": 1, "max": 16}}  # read from max_position_embeddings
    assert m.structure["class"] == "BaseModelOutputWithPoolingAndCrossAttentions"
    inputs = bert_inputs(3, 5, pad=2)
    with torch.inference_mode():
        expected = dict(model(**inputs))
    native = NativeModel(path)
    assert_same(native.run_structured(inputs), expected)
    assert_same(predict(path, inputs, tmp_path), expected)
    with pytest.raises(BadInputError, match=r"input 'input_ids': dim 1 \(seq\) is 20, expected 1 to 16"):
        native.run_structured(bert_inputs(1, 20))
    proc = run_binary("selfcheck", str(path))
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"]
    report = torchport.verify(path, model=model, inputs=bert_inputs(3, 5, pad=2))
    assert report.bit_exact and {r.output for r in report.rows} == {"last_hidden_state", "pooler_output"}


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_decoder_without_past_key_values_and_encoder_decoder(tmp_path):
    decoder = gpt2()
    with pytest.warns(ExportWarning):
        path = torchport.export(decoder, None, tmp_path / "gpt2.pt", example_kwargs=bert_inputs(2, 8),
                                dynamic_dims=SEQ_DIMS)
    m = torchport.read_manifest(path)
    assert m.output_names == ["logits"] and m.outputs[0].shape == ("batch", "seq", 50)
    assert m.dims == {"seq": {"min": 1, "max": 16}}
    inputs = bert_inputs(3, 5, pad=1)
    with torch.inference_mode():
        expected = dict(decoder(**inputs))
    assert_same(NativeModel(path).run_structured(inputs), expected)

    model = t5()
    dims = {**SEQ_DIMS, "decoder_input_ids": {0: "batch", 1: "target"}}
    example = {**bert_inputs(2, 8), "decoder_input_ids": torch.randint(0, 50, (2, 4))}
    with pytest.warns(ExportWarning):
        path = torchport.export(model, None, tmp_path / "t5.pt", example_kwargs=example, dynamic_dims=dims)
    m = torchport.read_manifest(path)
    assert m.output_names == ["last_hidden_state", "encoder_last_hidden_state"]
    assert [o.shape for o in m.outputs] == [("batch", "target", 16), ("batch", "seq", 16)]
    inputs = {**bert_inputs(3, 5, pad=2), "decoder_input_ids": torch.randint(0, 50, (3, 6))}
    with torch.inference_mode():
        expected = dict(model(**inputs))
    assert_same(NativeModel(path).run_structured(inputs), expected)
    assert_same(predict(path, inputs, tmp_path), expected)


def test_optional_input_constant_and_named_tuple(tmp_path):
    torch.manual_seed(0)
    model = OptionalMask().eval()
    x, mask = torch.rand(2, 4, 6), torch.ones(2, 4, dtype=torch.long)
    path = torchport.export(model, x, tmp_path / "opt.pt", example_kwargs={"mask": mask, "scale": 0.5},
                            dynamic_dims={"x": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}})
    m = torchport.read_manifest(path)
    assert [(s.name, s.optional) for s in m.inputs] == [("x", False), ("mask", True)]
    assert m.constants == {"scale": 0.5}
    assert m.output_names == ["value", "gate"]
    x2, mask2 = torch.rand(3, 7, 6), (torch.rand(3, 7) > 0.5).long()
    native = NativeModel(path)
    with torch.inference_mode():
        with_mask, without = model(x2, mask2, scale=0.5), model(x2, scale=0.5)
    got = native.run_structured({"x": x2, "mask": mask2})
    assert type(got).__name__ == "Gated" and got._fields == Gated._fields
    assert_same(tuple(got), tuple(with_mask))
    assert_same(tuple(native.run_structured(x2, None)), tuple(without))
    assert_same(tuple(native.run_structured({"x": x2})), tuple(without))
    assert_same(predict(path, {"x": x2}, tmp_path), tuple(without))
    with pytest.raises(BadInputError, match="missing 'x'"):
        native.run_structured({"mask": mask2})
    report = torchport.verify(path, model=model)  # the golden inputs; eager gets scale=0.5 as export did
    assert report.bit_exact and {r.output for r in report.rows} == {"value", "gate"}


class TakesAConfig(nn.Module):
    def forward(self, x: torch.Tensor, options: dict) -> torch.Tensor:
        return x * options["scale"]


def test_what_cannot_be_carried_is_refused_at_export(tmp_path):
    with pytest.raises(BadOptionError, match=r"argument 'options' is given a dict"):
        torchport.export(TakesAConfig(), torch.rand(2, 3), tmp_path / "a.pt", example_kwargs={"options": {"scale": 2}})
    with pytest.raises(BadOptionError, match=r"output 'extra' is a str"):
        class Returns(nn.Module):
            def forward(self, x):
                return {"y": x, "extra": "text"}
        torchport.export(Returns(), torch.rand(2, 3), tmp_path / "b.pt")
    assert not list(tmp_path.iterdir())


def test_script_failure_reason_is_complete():
    class Untypable(nn.Module):
        def forward(self, x):
            return x + len({id(x): 1})  # id() cannot be scripted; the reason is past the first line

    from torchport.exporter import _bind, _compile

    call = _bind(Untypable(), torch.rand(2), None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _compile(Untypable(), call, "auto", strict=True)
    message = str(next(w.message for w in caught if issubclass(w.category, ExportWarning)))
    assert "torch.jit.script failed" in message and "return x + len({id(x): 1})" in message


def test_describe_outputs_is_the_one_naming_rule():
    # Export's order, names and structure come from the runtime (torchport::describe_outputs).
    from torchport.native import load_native

    describe = load_native().describe_outputs
    x = torch.zeros(2, 1)
    layout = describe({"a": [x, x], "b": (x,)})
    assert layout.names == ["a.0", "a.1", "b.0"] and layout.schema == 2 and len(layout.tensors) == 3
    per = describe([{"k": x}, {"k": x}], batch=2, at_other_batch=[{"k": x}] * 3, other_batch=3)
    assert per.names == ["output_*.k"] and per.specs == [0, 0] and per.specs_for(5) == [0] * 5 and per.schema == 3
    mixed = describe([{"k": x}, {"j": x}], batch=2, at_other_batch=[{"k": x}] * 3, other_batch=3)
    assert mixed.names == ["output_0.k", "output_1.j"] and mixed.schema == 2  # items differ: a fixed list
    with pytest.raises(BadOptionError, match=r"output 'a': dict keys must be non-empty strings, got \[1\]"):
        describe({"a": {1: x}})
    loop: list = [x]
    loop.append(loop)
    with pytest.raises(BadOptionError, match="nests more than 32 levels deep"):
        describe(loop)
