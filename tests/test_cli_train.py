"""`torchport train`, `export`, `models`, `datasets` as a user runs them, and their errors."""

from __future__ import annotations

import json

import torch

import torchport
from conftest import run_cli


def test_models_and_datasets_list_one_line_each():
    proc = run_cli("models")
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["linear", "mlp", "cnn", "cnn3d", "unet", "rnn", "transformer"]
    proc = run_cli("datasets")
    names = [line.split()[0] for line in proc.stdout.strip().splitlines()]
    assert names == ["digits", "wine", "thermometer", "nodules", "shapes", "signals", "--csv", "--images"]


def test_train_then_export_a_csv_model(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 3, generator=g)
    (tmp_path / "data.csv").write_text(
        "x1,x2,x3,price\n" + "\n".join(f"{a},{b},{c},{2 * a - b + 0.5}" for a, b, c in x.tolist()) + "\n"
    )
    proc = run_cli("train", "mlp", "--csv", str(tmp_path / "data.csv"), "--target", "price", "--epochs", "2",
                   "--batch-size", "16", "--seed", "1", "--out", str(tmp_path / "run"), "--no-progress",
                   "--set", "hidden=[16]")
    assert proc.returncode == 0, proc.stderr
    assert "trained mlp on csv:data.csv for 2 epochs" in proc.stdout and "'mae'" in proc.stdout
    ckpt = tmp_path / "run" / "checkpoint.pt"
    proc = run_cli("export", str(ckpt), "--out", str(tmp_path / "price.pt"))
    assert proc.returncode == 0, proc.stderr
    assert "result: bit-exact" in proc.stdout
    m = torchport.read_manifest(tmp_path / "price.pt")
    assert m.output_names == ["prediction"] and m.metadata["task"] == "regression"
    assert m.metadata["config"]["hidden"] == [16]
    proc = run_cli("export", str(ckpt), "--out", str(tmp_path / "price.pt"))
    assert proc.returncode == 2 and "exists; pass force=True (--force)" in proc.stderr
    proc = run_cli("export", str(ckpt), "--out", str(tmp_path / "fast.pt"), "--optimize", "fast")
    assert proc.returncode == 0, proc.stderr
    assert torchport.read_manifest(tmp_path / "fast.pt").optimize == "fast"
    assert "optimize: fast" in run_cli("inspect", str(tmp_path / "fast.pt")).stdout
    proc = run_cli("bench", str(tmp_path / "price.pt"), "--checkpoint", str(ckpt), "--batch", "2", "--iters", "2",
                   "--rounds", "1", "--runtimes", "eager,native", "--json", str(tmp_path / "bench.json"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert [(r["runtime"], r["ratio"]) for r in rows][0] == ("eager", 1.0) and rows[1]["runtime"] == "native"
    proc = run_cli("export", str(ckpt), "--out", str(tmp_path / "price.pt"), "--postprocess", "argmax", "--force")
    assert proc.returncode == 2 and "needs classes; this is a regression model" in proc.stderr


def test_train_errors(tmp_path):
    out = str(tmp_path / "run")
    proc = run_cli("train", "resnet", "--out", out)
    assert proc.returncode == 2 and "torchport: error[bad_option]: unknown model family 'resnet'" in proc.stderr
    proc = run_cli("train", "mlp", "--data", "mnist", "--out", out)
    assert proc.returncode == 2 and "unknown dataset 'mnist'" in proc.stderr
    proc = run_cli("train", "cnn", "--data", "wine", "--out", out)
    assert proc.returncode == 2 and "takes images (C, H, W)" in proc.stderr
    (tmp_path / "d.csv").write_text("a,b\n1,2\n,3\n")
    proc = run_cli("train", "mlp", "--csv", str(tmp_path / "d.csv"), "--target", "c", "--out", out)
    assert proc.returncode == 7 and "no column 'c'; columns are ['a', 'b']" in proc.stderr
    proc = run_cli("train", "mlp", "--csv", str(tmp_path / "d.csv"), "--target", "b", "--out", out)
    assert proc.returncode == 7 and "line 3, column 'a': empty cell; expected a number" in proc.stderr
    (tmp_path / "imgs" / "cats").mkdir(parents=True)
    proc = run_cli("train", "cnn", "--images", str(tmp_path / "imgs"), "--out", out)
    assert proc.returncode == 7 and "holds no images" in proc.stderr
    proc = run_cli("train", "mlp", "--set", "width", "--out", out)
    assert proc.returncode == 2 and "expected KEY=VALUE" in proc.stderr


def test_export_refuses_an_incompatible_checkpoint(tmp_path):
    torch.save({"format": "torchport.checkpoint", "format_version": 99, "torchport_version": "7.0"}, tmp_path / "c.pt")
    proc = run_cli("export", str(tmp_path / "c.pt"), "--out", str(tmp_path / "m.pt"))
    assert proc.returncode == 8 and "format version 99" in proc.stderr and "upgrade torchport" in proc.stderr
    proc = run_cli("export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.pt"))
    assert proc.returncode == 8 and "does not exist" in proc.stderr
