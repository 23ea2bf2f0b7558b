"""torchport.train and torchport.checkpoint on tiny data: every family trains,
checkpoints, exports and is bit-exact through the C++ runtime; runs are
deterministic, resumable, logged; two DDP processes match one process."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
import torch

import torchport
from torchport.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    export_checkpoint,
    load_checkpoint,
    pipeline_from_checkpoint,
    read_checkpoint,
)
from torchport.data import CSVDataset, Nodules, Shapes, Signals, load_dataset
from torchport.errors import BadOptionError, CheckpointError
from torchport.models import FAMILIES
from torchport.train import TrainConfig, train

QUIET = TrainConfig(epochs=1, batch_size=16, progress=False, tensorboard=False, plots=False, device="cpu")


def tiny(family: str):
    name = FAMILIES[family].default_dataset
    return {
        "nodules": lambda: Nodules(n=24, size=16),
        "shapes": lambda: Shapes(n=24, size=16),
        "signals": lambda: Signals(n=40, length=24),
    }.get(name, lambda: load_dataset(name))()


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_trains_exports_and_is_bit_exact_in_cpp(family, tmp_path):
    ds = tiny(family)
    result = train(family, ds, out=tmp_path / "run", config=QUIET)
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt["family"] == family and ckpt["dataset"]["name"] == ds.name and ckpt["epoch"] == 1
    assert set(result.metrics) >= {"loss"} and result.metrics == {k: v for k, v in ckpt["metrics"].items()}

    artifact = export_checkpoint(result.checkpoint, tmp_path / f"{family}.pt")
    manifest = torchport.read_manifest(artifact)
    assert manifest.inputs[0].name == ds.input_name
    assert manifest.metadata["labels"] == list(ds.labels)
    assert manifest.metadata["preprocessing"]["normalization"] == ckpt["normalization"]
    assert manifest.metadata["validation"]["loss"] == pytest.approx(result.metrics["loss"])
    # raw validation-like data through eager, TorchScript, the binding and torchport-run
    report = torchport.verify(artifact, model=pipeline_from_checkpoint(ckpt), inputs=[ds.x[:5]])
    assert report.bit_exact, str(report)
    assert {r.runtime for r in report.rows} == {"torchscript", "native", "binary"}
    assert torchport.verify(artifact).bit_exact  # golden examples


def test_training_is_deterministic_and_resumes_exactly(tmp_path):
    cfg = replace(QUIET, epochs=3, batch_size=32)
    a = train("mlp", "wine", out=tmp_path / "a", config=cfg)
    b = train("mlp", "wine", out=tmp_path / "b", config=cfg)
    half = train("mlp", "wine", out=tmp_path / "c", config=cfg, until=1)
    assert half.epochs == 1 and load_checkpoint(half.checkpoint)["epoch"] == 1
    resumed = train("mlp", "wine", out=tmp_path / "c", config=replace(cfg, lr=1.0), resume=half.checkpoint)  # its own lr wins
    sa, sb, sc = (load_checkpoint(r.checkpoint)["state_dict"] for r in (a, b, resumed))
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
        assert torch.equal(sa[k], sc[k]), k
    assert [r["val_loss"] for r in load_checkpoint(resumed.checkpoint)["history"]] == [r["val_loss"] for r in a.history]


def test_a_run_writes_logs_plots_and_a_self_describing_checkpoint(tmp_path):
    cfg = replace(QUIET, epochs=2, tensorboard=True, plots=True)
    r = train("cnn", "digits", out=tmp_path, config=cfg)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2] and len(rows[-1]["val_confusion"]) == 10
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "train_loss", "val_loss", "val_accuracy", "lr"} <= set(header)
    for png in ("loss.png", "metric.png", "confusion.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())
    ckpt = torch.load(r.checkpoint, weights_only=True)  # plain torch can read it without executing code
    for key in ("family", "config", "state_dict", "dataset", "normalization", "metrics", "torchport_version", "torch_version"):
        assert key in ckpt
    assert ckpt["dataset"]["labels"] == [str(i) for i in range(10)]
    assert not list(tmp_path.glob(".checkpoint.pt.*"))  # atomic write left no temp file
    model = pipeline_from_checkpoint(ckpt)  # the checkpoint alone rebuilds the model
    x = load_dataset("digits").x[:50]
    assert (model(x).argmax(1) == load_dataset("digits").y[:50]).float().mean() > 0.5


def test_regression_and_segmentation_metrics(tmp_path):
    reg = train("linear", "thermometer", out=tmp_path / "t", config=replace(QUIET, epochs=2))
    assert {"mse", "mae"} <= set(reg.metrics)
    seg = train("unet", Shapes(n=16, size=16), out=tmp_path / "s", config=QUIET)
    assert {"dice", "iou"} <= set(seg.metrics) and 0 <= seg.metrics["iou"] <= seg.metrics["dice"] <= 1


def test_export_postprocess_and_overwrite(tmp_path):
    r = train("mlp", "wine", out=tmp_path, config=QUIET)
    logits = export_checkpoint(r.checkpoint, tmp_path / "logits.pt")
    probs = export_checkpoint(r.checkpoint, tmp_path / "probs.pt", postprocess="softmax")
    labels = export_checkpoint(r.checkpoint, tmp_path / "labels.pt", postprocess="argmax")
    x = load_dataset("wine").x[:7]
    (lo,) = torchport.NativeModel(logits).run(x)
    (pr,) = torchport.NativeModel(probs).run(x)
    (lb,) = torchport.NativeModel(labels).run(x)
    assert torch.equal(pr, torch.softmax(lo, 1)) and torch.equal(lb, lo.argmax(1)) and lb.dtype == torch.int64
    assert torchport.read_manifest(labels).output_names == ["label"]
    with pytest.raises(BadOptionError, match="exists; pass force=True"):
        export_checkpoint(r.checkpoint, labels)
    export_checkpoint(r.checkpoint, labels, postprocess="softmax", force=True)
    assert torchport.read_manifest(labels).output_names == ["probabilities"]


def test_incompatible_checkpoint_is_refused(tmp_path):
    r = train("mlp", "wine", out=tmp_path, config=QUIET)
    ckpt = torch.load(r.checkpoint, weights_only=True)
    torch.save({**ckpt, "format_version": FORMAT_VERSION + 1, "torchport_version": "9.0.0"}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 2, written by torchport 9.0.0; .* upgrade torchport"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({"model": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a torchport training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="is mlp on wine, not mlp on digits"):
        train("mlp", "digits", out=tmp_path / "x", config=QUIET, resume=r.checkpoint)


def _saved(content: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(content, buf)
    return buf.getvalue()


def test_the_checkpoint_dataclass_writes_the_layout_on_disk_byte_for_byte(tmp_path):
    # The dict torchport's training loop wrote as literals before Checkpoint existed
    # (format version 1, issue 11's fields included): the dataclass reads it and
    # writes the same bytes, so old files load and new files read as old ones did.
    written = {
        "format": "torchport.checkpoint", "format_version": 1, "torchport_version": "0.4.0", "torch_version": "2.9.0",
        "family": "mlp", "config": {"in_features": 4, "hidden": [8]},
        "dataset": {"name": "csv:weather", "description": "a CSV file", "task": "classification",
                    "input_shape": [4], "input_name": "features", "labels": ["cold", "hot"],
                    "features": [{"name": "temp", "type": "numeric"},
                                 {"name": "city", "type": "categorical", "vocabulary": ["lyon", "nice", "paris"]}],
                    "image": {"size": [8, 8]}},
        "normalization": {"mean": [0.0], "std": [1.0], "shape": [1]},
        "target_normalization": {"mean": [2.0], "std": [3.0], "shape": [1]},
        "split": {"val_fraction": 0.2, "seed": 0, "n_train": 8, "n_val": 2, "held_out": True},
        "train_config": {"epochs": 3, "lr": 0.01},
        "state_dict": {"net.0.weight": torch.arange(6.0).reshape(2, 3)},
        "metrics": {"loss": 0.5, "accuracy": 1.0}, "history": [{"epoch": 1, "val_loss": 0.5}], "epoch": 1,
        "optimizer": {"state": {}, "param_groups": []}, "scheduler": {"last_epoch": 4},
    }
    assert _saved(Checkpoint.from_dict(written).to_dict()) == _saved(written)
    # and one from before issue 11: no features, picture size, target scaling or split
    older = {k: v for k, v in written.items() if k not in ("target_normalization", "split")}
    older["dataset"] = {k: v for k, v in written["dataset"].items() if k not in ("features", "image")}
    torch.save(older, tmp_path / "old.pt")
    ckpt = read_checkpoint(tmp_path / "old.pt")
    assert (ckpt.dataset.features, ckpt.dataset.image_size, ckpt.split) == ([], None, None)
    assert load_checkpoint(tmp_path / "old.pt")["state_dict"]["net.0.weight"].tolist() == [[0, 1, 2], [3, 4, 5]]
    broken = {**written, "dataset": {"name": "wine"}}
    with pytest.raises(CheckpointError, match="the dataset entry lacks or mistypes 'description'"):
        Checkpoint.from_dict(broken, tmp_path / "broken.pt")


@pytest.mark.slow
def test_two_ddp_processes_match_one(tmp_path):
    # 80 rows: 64 train = 4 global batches of 16 (8 per rank), so both runs see the
    # same samples per step; no dropout or batch norm, so only float summation differs.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 4, generator=g)
    rows = [[*r.tolist(), int(r.sum() > 0)] for r in x]
    path = tmp_path / "data.csv"
    path.write_text("a,b,c,d,y\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    ds = CSVDataset(path, target="y")
    cfg = replace(QUIET, epochs=2, batch_size=16)
    one = train("mlp", ds, out=tmp_path / "one", config=cfg, model_options={"dropout": 0.0})
    two = train("mlp", ds, out=tmp_path / "two", config=replace(cfg, nproc=2), model_options={"dropout": 0.0})
    s1, s2 = (load_checkpoint(r.checkpoint)["state_dict"] for r in (one, two))
    for k in s1:
        torch.testing.assert_close(s2[k], s1[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
    assert two.metrics["accuracy"] == one.metrics["accuracy"]
    assert two.history[-1]["train_loss"] == pytest.approx(one.history[-1]["train_loss"], rel=1e-5)
    assert not list((tmp_path / "two").glob(".job.*"))


def test_an_image_folder_trains_and_exports(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c in ("dark", "light"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(10):
            base = 40 if c == "dark" else 200
            pixels = (base + 30 * torch.rand(12, 12, 3, generator=g)).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(tmp_path / "imgs" / c / f"{i}.png")
    from torchport.data import ImageFolder

    ds = ImageFolder(tmp_path / "imgs", size=(8, 8))
    r = train("cnn", ds, out=tmp_path / "run", config=replace(QUIET, batch_size=8, val_fraction=0.2))
    artifact = export_checkpoint(r.checkpoint, tmp_path / "pets.pt", postprocess="argmax")
    assert torchport.read_manifest(artifact).metadata["labels"] == ["dark", "light"]
    from torchport.images import read_image

    pictures = torch.cat([read_image(f) for f in ds.files])  # uint8 [20, 12, 12, 3]: the files, as the model takes them
    assert torchport.verify(artifact, model=pipeline_from_checkpoint(load_checkpoint(r.checkpoint), "argmax"),
                            inputs=[pictures]).bit_exact
