"""Recipes: the plain command converges. The thermometer line of the book from
`torchport train linear`, regression targets standardised in training and
de-standardised inside the exported graph, early stopping with the best checkpoint
kept, and the held-out split computed once, by train()."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import torchport
from conftest import run_cli
from torchport.checkpoint import export_checkpoint, load_checkpoint
from torchport.data import CSVDataset, load_dataset, split_indices
from torchport.errors import BadOptionError
from torchport.recipes import GENERIC, RECIPES, recipe_for
from torchport.train import TrainConfig, rebuild, train

BOOK_LINE = (5.3671, -17.3012)  # t_c = w * (0.1 * t_u) + b, Deep Learning with PyTorch ch. 5
QUIET = TrainConfig(progress=False, tensorboard=False, plots=False, device="cpu")


def test_the_default_command_reproduces_the_books_thermometer_line(tmp_path):
    proc = run_cli("train", "linear", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    model = rebuild(tmp_path / "run" / "checkpoint.pt")
    with torch.no_grad():
        b = model(torch.zeros(1, 1)).item()
        w = model(torch.full((1, 1), 10.0)).item() - b  # per 0.1 unit of t_u, the book's t_un
    assert w == pytest.approx(BOOK_LINE[0], rel=0.01) and b == pytest.approx(BOOK_LINE[1], rel=0.01), (w, b)


def test_a_recipe_fills_only_what_the_caller_left_unset():
    cfg = TrainConfig(lr=0.1).with_recipe("linear", "thermometer")
    assert cfg.lr == 0.1 and cfg.epochs == RECIPES[("linear", "thermometer")].settings["epochs"]
    assert TrainConfig().with_recipe("mlp", "csv:mine.csv").epochs == GENERIC.settings["epochs"]
    assert recipe_for("rnn", "signals").model_options == {"cell": "lstm"}
    TrainConfig().check()  # unset fields are the recipe's, not errors
    with pytest.raises(BadOptionError, match="lr: expected > 0, got 0"):
        TrainConfig(lr=0).check()


def test_regression_targets_are_standardised_in_training_and_not_in_the_artifact(tmp_path):
    # house prices in the hundreds of thousands: the model learns (y - mean) / std
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g)
    price = 250_000 + 40_000 * x[:, 0] - 25_000 * x[:, 1] + 1_000 * torch.randn(200, generator=g)
    path = tmp_path / "houses.csv"
    path.write_text("rooms,age,price\n" + "".join(f"{a},{b},{p}\n" for (a, b), p in zip(x.tolist(), price.tolist())))
    ds = CSVDataset(path, target="price")
    r = train("linear", ds, out=tmp_path / "run", config=replace(QUIET, epochs=60, lr=0.05))
    ckpt = load_checkpoint(r.checkpoint)
    tn = ckpt["target_normalization"]
    assert tn["mean"][0] == pytest.approx(price.mean().item(), rel=0.01) and tn["shape"] == [1]
    assert r.history[0]["train_loss"] < 10  # standardised: not 1e10
    assert r.metrics["mae"] < 3_000  # in the data's units, near the noise of 1,000
    artifact = export_checkpoint(r.checkpoint, tmp_path / "price.pt")
    (pred,) = torchport.NativeModel(artifact).run(ds.x[:5])
    assert (pred - ds.y[:5]).abs().max() < 5_000  # the C++ runtime answers in currency, not in std units
    assert torchport.read_manifest(artifact).metadata["target_scaling"]["inside_model"] is True


def test_early_stopping_keeps_the_best_checkpoint_beside_the_last(tmp_path):
    # a constant lr: the validation accuracy soon stops improving, and patience 2 ends the run
    cfg = replace(QUIET, epochs=30, batch_size=16, lr=0.02, optimizer="adamw", schedule="constant", patience=2)
    r = train("mlp", "wine", out=tmp_path / "run", config=cfg)
    assert r.epochs < 30 and len(r.history) == r.epochs
    best = load_checkpoint(r.best)
    values = [row["val_accuracy"] for row in r.history]
    assert best["metrics"]["accuracy"] == max(values)
    assert best["epoch"] == values.index(max(values)) + 1 and r.epochs - best["epoch"] == 2
    assert load_checkpoint(tmp_path / "run")["epoch"] == r.epochs


def test_the_held_out_split_is_the_one_train_made(tmp_path):
    r = train("mlp", "wine", out=tmp_path / "run", config=replace(QUIET, epochs=1))
    _, val_idx = split_indices(len(load_dataset("wine")), 0.2, seed=0)
    assert r.val_indices == val_idx and len(r.val_indices) == 36


def test_plots_are_readable(tmp_path):
    from PIL import Image

    from torchport.train import write_plots

    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "train_accuracy": 0.5 + e / 10,
                "val_accuracy": 0.5 + e / 12, "val_confusion": [[5, 1, 0], [0, 4, 2], [1, 0, 7]]} for e in (1, 2, 3)]
    written = write_plots(history, "classification", ["ant", "bee", "cat"], tmp_path, title="run (mlp on bugs)",
                          split="validation split")
    assert [p.name for p in written] == ["loss.png", "metric.png", "confusion.png"]
    with Image.open(tmp_path / "confusion.png") as im:
        assert im.width >= 500 and im.height >= 400  # was 255 x 235 pixels
    reg = [{"epoch": e, "train_loss": 10.0 ** -e, "val_loss": 10.0 ** -e, "train_mae": 1.0, "val_mae": 1.0} for e in (1, 2)]
    assert [p.name for p in write_plots(reg, "regression", [], tmp_path)] == ["loss.png", "metric.png"]
