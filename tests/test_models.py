"""torchport.models: every family scripts, and scripted equals eager bit for bit."""

from __future__ import annotations

import pytest
import torch

from torchport.errors import BadOptionError
from torchport.exporter import _jit
from torchport.models import FAMILIES, Pipeline, build_model, config_dict, config_for

SAMPLES = {
    "linear": ((3,), 2, "regression"),
    "mlp": ((13,), 3, "classification"),
    "cnn": ((1, 8, 8), 10, "classification"),
    "cnn3d": ((1, 16, 16, 16), 2, "classification"),
    "unet": ((1, 16, 16), 1, "segmentation"),
    "rnn": ((12, 2), 4, "classification"),
    "transformer": ((12, 2), 4, "classification"),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_scripts_and_matches_eager(family):
    shape, n, task = SAMPLES[family]
    torch.manual_seed(0)
    cfg = config_for(family, shape, n, task)
    model = build_model(family, config_dict(cfg)).eval()  # from the dict a checkpoint stores
    scripted = _jit(torch.jit.script, model)
    x = torch.randn(5, *shape)
    with torch.inference_mode():
        eager, script = model(x), scripted(x)
    expected = (5, n, *shape[1:]) if task == "segmentation" else (5, n)
    assert eager.shape == expected
    assert torch.equal(eager, script)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_cells(cell):
    model = build_model("rnn", config_for("rnn", (7, 3), 2, cell=cell, pool="last")).eval()
    assert isinstance(model.rnn, torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)
    assert torch.equal(model(torch.ones(2, 7, 3)), _jit(torch.jit.script, model)(torch.ones(2, 7, 3)))


def test_transformer_masks():
    torch.manual_seed(0)
    model = build_model("transformer", config_for("transformer", (10, 1), 3, dropout=0.0)).eval()
    scripted = _jit(torch.jit.script, model)
    x = torch.randn(2, 10, 1)
    lengths = torch.tensor([6, 10])
    garbage = x.clone()
    garbage[0, 6:] = 100.0  # past the length of sequence 0
    with torch.no_grad():
        torch.testing.assert_close(model(garbage, lengths), model(x, lengths))  # padding is masked out
        assert not torch.allclose(model(garbage), model(x))
        assert torch.equal(scripted(x, lengths), model(x, lengths))
    causal = build_model("transformer", config_for("transformer", (10, 1), 3, dropout=0.0, causal=True)).eval()
    assert torch.equal(_jit(torch.jit.script, causal)(x), causal(x))


def test_pipeline_normalises_and_postprocesses():
    torch.manual_seed(0)
    model = build_model("mlp", config_for("mlp", (4,), 3)).eval()
    mean, std = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([2.0, 2.0, 2.0, 2.0])
    x = torch.randn(6, 4) * 2 + 3
    with torch.no_grad():
        logits = model((x - mean) / std)
        assert torch.equal(Pipeline(model, mean, std)(x), logits)
        assert torch.equal(Pipeline(model, mean, std, "softmax")(x), torch.softmax(logits, 1))
        assert torch.equal(Pipeline(model, mean, std, "argmax")(x), logits.argmax(1))
    with pytest.raises(BadOptionError, match="postprocess"):
        Pipeline(model, mean, std, "sigmoid")


def test_config_errors():
    with pytest.raises(BadOptionError, match="unknown model family 'resnet'; choose from linear, mlp, cnn"):
        config_for("resnet", (3,), 2)
    with pytest.raises(BadOptionError, match=r"'cnn' takes images \(C, H, W\); the dataset gives samples of shape \[13\]"):
        config_for("cnn", (13,), 3)
    with pytest.raises(BadOptionError, match="'unet' does segmentation, not classification"):
        config_for("unet", (1, 8, 8), 3, "classification")
    with pytest.raises(BadOptionError, match=r"no option\(s\) \['width'\]"):
        config_for("mlp", (3,), 2, width=5)
