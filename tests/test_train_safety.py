"""Training refuses what would corrupt a run silently: bad numbers in the data, a loss
that stops being finite, a run folder already in use; the seed gives the same weights
whatever the display; Ctrl-C leaves a checkpoint to resume, and --epochs extends a
finished run."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import torchport.train.loop as train_module
from conftest import run_cli
from torchport.checkpoint import load_checkpoint
from torchport.data import CSVDataset, TorchportDataset
from torchport.errors import BadOptionError, DataError, ModelRuntimeError
from torchport.train import TrainConfig, TrainingInterrupted, train

QUIET = TrainConfig(epochs=2, batch_size=32, progress=False, tensorboard=False, plots=False, device="cpu")


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir)["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k}: {a} and {b} differ by {(wa[k] - wb[k]).abs().max().item()}"


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-Infinity"])
def test_non_finite_csv_cells_are_refused_naming_file_line_and_column(tmp_path, cell):
    path = tmp_path / "d.csv"
    path.write_text(f"a,b,y\n1,2,0\n3,{cell},1\n5,6,0\n")
    with pytest.raises(DataError, match=rf"CSV file '{path}', line 3, column 'b': expected a finite number, got '{cell}'"):
        CSVDataset(path, target="y")
    proc = run_cli("train", "mlp", "--csv", str(path), "--target", "y", "--out", str(tmp_path / "run"))
    assert proc.returncode == 7 and "line 3, column 'b'" in proc.stderr, proc.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_non_finite_tensors_in_a_dataset_object_are_refused():
    class Mine(TorchportDataset):
        name = "mine"

    x = torch.zeros(4, 2)
    x[2, 1] = float("nan")
    with pytest.raises(DataError, match="mine: input of sample 2 holds NaN or Inf"):
        Mine(x, torch.zeros(4, dtype=torch.int64))


def test_a_non_finite_loss_stops_training_naming_epoch_and_step(tmp_path):
    # an absurd learning rate: the first step's update overflows the weights
    cfg = replace(QUIET, batch_size=4, lr=1e38, optimizer="sgd", schedule="constant")
    with pytest.raises(ModelRuntimeError, match=r"the loss is (inf|nan) at epoch 1, step 2 of 3; expected a finite loss"):
        train("linear", "thermometer", out=tmp_path / "run", config=cfg)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # no epoch finished: nothing to resume from


def test_the_seed_gives_the_same_weights_whatever_the_display(tmp_path, monkeypatch):
    # no display at all; bars drawn (as on a terminal or in a notebook); plain per-epoch lines
    train("mlp", "wine", out=tmp_path / "quiet", config=QUIET)
    monkeypatch.setattr(train_module, "_is_terminal", lambda: True)
    train("mlp", "wine", out=tmp_path / "bars", config=replace(QUIET, progress=True))
    monkeypatch.setattr(train_module, "_is_terminal", lambda: False)
    train("mlp", "wine", out=tmp_path / "lines", config=replace(QUIET, progress=True))
    # and the command line in a pipe, with and without --no-progress
    for name, extra in (("pipe", []), ("pipe-no-progress", ["--no-progress"])):
        proc = run_cli("train", "mlp", "--data", "wine", "--epochs", "2", "--batch-size", "32", "--device", "cpu",
                       "--out", str(tmp_path / name), *extra)
        assert proc.returncode == 0, proc.stderr
    for name in ("bars", "lines", "pipe", "pipe-no-progress"):
        assert_same_weights(tmp_path / "quiet", tmp_path / name)


def test_a_pipe_gets_one_plain_line_per_epoch(tmp_path):
    proc = run_cli("train", "mlp", "--data", "wine", "--epochs", "3", "--batch-size", "32", "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"], proc.stderr
    assert "\r" not in proc.stderr and "it/s" not in proc.stderr  # no progress bar in a log


def test_an_existing_out_is_refused_unless_resume_or_force(tmp_path):
    out = tmp_path / "run"
    train("mlp", "wine", out=out, config=QUIET)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(BadOptionError, match=r"'.*run' already holds files .*--resume .*--force"):
        train("mlp", "wine", out=out, config=QUIET)
    proc = run_cli("train", "mlp", "--data", "wine", "--out", str(out), "--no-progress")
    assert proc.returncode == 2 and "already holds files" in proc.stderr
    before = (out / "checkpoint.pt").read_bytes()
    (out / "tensorboard").mkdir()
    (out / "tensorboard" / "events.out.tfevents.old").write_text("old")
    train("mlp", "wine", out=out, config=replace(QUIET, epochs=1), force=True)
    assert (out / "checkpoint.pt").read_bytes() != before and load_checkpoint(out)["epoch"] == 1
    assert not (out / "tensorboard").exists()  # the old run's events are gone, not mixed in
    assert (out / "notes.txt").read_text() == "mine"  # files a run does not write are kept
    with pytest.raises(BadOptionError, match="is a file; expected a run folder"):
        train("mlp", "wine", out=out / "notes.txt", config=QUIET, force=True)


def test_epochs_extend_a_finished_run(tmp_path):
    train("mlp", "wine", out=tmp_path / "r", config=QUIET)
    again = train("mlp", "wine", out=tmp_path / "r", config=replace(QUIET, epochs=None), resume=tmp_path / "r")
    assert again.epochs == 2 and load_checkpoint(tmp_path / "r")["epoch"] == 2  # nothing to add
    more = train("mlp", "wine", out=tmp_path / "r", config=replace(QUIET, epochs=4), resume=tmp_path / "r")
    ckpt = load_checkpoint(tmp_path / "r")
    assert more.epochs == 4 and ckpt["epoch"] == 4 and [r["epoch"] for r in ckpt["history"]] == [1, 2, 3, 4]
    assert ckpt["train_config"]["epochs"] == 4 and ckpt["history"][-1]["lr"] > 0
    with pytest.raises(BadOptionError, match="has already trained 4 epochs; expected 4 or more, got 3"):
        train("mlp", "wine", out=tmp_path / "r", config=replace(QUIET, epochs=3), resume=tmp_path / "r")


def test_ctrl_c_leaves_a_checkpoint_that_resumes_exactly(tmp_path):
    class Interrupting(CSVDataset):  # Ctrl-C in the middle of epoch 2
        reads = 0

        def __getitem__(self, i):
            type(self).reads += 1
            if type(self).reads == 64 + 16 + 10:  # epoch 1: 64 training and 16 validation reads
                raise KeyboardInterrupt
            return super().__getitem__(i)

    path = tmp_path / "d.csv"
    g = torch.Generator().manual_seed(0)
    path.write_text("a,b,y\n" + "".join(f"{a},{b},{int(a + b > 0)}\n" for a, b in torch.randn(80, 2, generator=g).tolist()))
    cfg = replace(QUIET, epochs=3, batch_size=16)
    with pytest.raises(TrainingInterrupted) as info:
        train("mlp", Interrupting(path, target="y"), out=tmp_path / "cut", config=cfg)
    assert info.value.epoch == 1 and info.value.checkpoint == tmp_path / "cut" / "checkpoint.pt"
    assert "holds epoch 1 of 3" in str(info.value)
    train("mlp", CSVDataset(path, target="y"), out=tmp_path / "cut", config=replace(cfg, epochs=None),
          resume=tmp_path / "cut")
    train("mlp", CSVDataset(path, target="y"), out=tmp_path / "whole", config=cfg)
    assert_same_weights(tmp_path / "cut", tmp_path / "whole")


def test_ctrl_c_on_the_command_line_prints_the_resume_command(tmp_path):
    out = tmp_path / "run"
    cmd = [str(Path(sys.executable).parent / "torchport"), "train", "mlp", "--data", "wine", "--epochs", "1000",
           "--batch-size", "32", "--out", str(out), "--force"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait for a finished epoch, then press Ctrl-C
        if line.startswith("epoch 2/1000"):
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    resume = next(line for line in err.splitlines() if "resume with:" in line).split("resume with: ")[1]
    assert resume.endswith(f"--out {out} --resume {out}") and "--force" not in resume
    assert load_checkpoint(out)["epoch"] >= 2
    proc = subprocess.run([str(Path(sys.executable).parent / "torchport"), *resume.split()[1:], "--epochs",
                           str(load_checkpoint(out)["epoch"] + 1), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_export_takes_the_run_folder(tmp_path):
    train("mlp", "wine", out=tmp_path / "run", config=QUIET)
    proc = run_cli("export", str(tmp_path / "run"), "--out", str(tmp_path / "wine.pt"), "--no-verify")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "wine.pt").is_file()
    (tmp_path / "empty").mkdir()
    proc = run_cli("export", str(tmp_path / "empty"), "--out", str(tmp_path / "x.pt"))
    assert proc.returncode == 8 and "is a directory without checkpoint.pt" in proc.stderr
