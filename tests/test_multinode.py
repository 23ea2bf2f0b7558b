"""Multi-node training, for real on one machine: two `torchport train --nnodes 2` launchers
(torch's elastic launcher underneath, one process each) rendezvous on 127.0.0.1 and train
with DDP over gloo. They match a single process within the --nproc test's tolerance; a
node that stops mid-run ends the other with a clear message within the timeout; and the
run resumes from the last checkpoint."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from torchport.checkpoint import load_checkpoint
from torchport.data import CSVDataset
from torchport.errors import BadOptionError
from torchport.train import TrainConfig, train

QUIET = TrainConfig(epochs=2, batch_size=16, progress=False, tensorboard=False, plots=False, device="cpu")
# --dist-timeout for the stopped-node test: seconds a node waits for a silent peer. Well above
# what rank 0 spends per epoch on evaluation and its checkpoint while the others wait (under
# 0.6 s here with the machine's 2 cores shared by four builds).
TIMEOUT = 8
HANG = 120  # a launcher still running this long after its peer stopped is hanging


def write_csv(path: Path) -> Path:
    # 80 rows: 64 train = 4 global batches of 16 (8 per node), as in test_train's --nproc test,
    # so one process and two nodes see the same samples per step.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 4, generator=g)
    rows = [[*r.tolist(), int(r.sum() > 0)] for r in x]
    path.write_text("a,b,c,d,y\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(rank: int, port: int, data: Path, out: Path, epochs: int, timeout: float = 120) -> subprocess.Popen:
    """One node: `python -m torchport train ... --nnodes 2 --node-rank RANK`, in its own session."""
    cmd = [sys.executable, "-m", "torchport", "train", "mlp", "--csv", str(data), "--target", "y",
           "--epochs", str(epochs), "--batch-size", "16", "--set", "dropout=0.0", "--device", "cpu", "--no-progress",
           "--nnodes", "2", "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
           "--dist-timeout", str(timeout), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def process_tree(pid: int) -> list[int]:
    """pid and every process below it (the launcher, torch's agent, the worker, which the
    agent starts in a session of its own): a whole node."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


def signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def assert_close_weights(got: dict, want: dict) -> None:
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.slow
def test_two_launchers_match_one_process(tmp_path):
    data = write_csv(tmp_path / "data.csv")
    one = train("mlp", CSVDataset(data, target="y"), out=tmp_path / "one", config=QUIET, model_options={"dropout": 0.0})
    port = free_port()
    nodes = [launch(r, port, data, tmp_path / f"node{r}", epochs=2) for r in (0, 1)]
    try:
        outs = [p.communicate(timeout=HANG) for p in nodes]
    finally:
        for p in nodes:
            signal_all(process_tree(p.pid), signal.SIGKILL)
    for p, (out, err) in zip(nodes, outs):
        assert p.returncode == 0, out + err
    assert "checkpoint: " in outs[0][0] and "node 1 of 2: trained mlp" in outs[1][0]
    assert not (tmp_path / "node1" / "checkpoint.pt").exists()  # global rank 0, on node 0, writes the run
    two = load_checkpoint(tmp_path / "node0" / "checkpoint.pt")
    ref = load_checkpoint(one.checkpoint)
    assert two["epoch"] == 2 and two["train_config"]["nnodes"] == 2
    assert_close_weights(two["state_dict"], ref["state_dict"])
    assert two["metrics"]["accuracy"] == ref["metrics"]["accuracy"]
    assert two["history"][-1]["train_loss"] == pytest.approx(ref["history"][-1]["train_loss"], rel=1e-5)
    assert not list(tmp_path.glob("node*/.job.*"))


@pytest.mark.slow
def test_a_node_that_stops_ends_the_other_and_the_run_resumes(tmp_path):
    """Node 1 stops after the first checkpoint, frozen like a machine that fell off the
    network: its connections stay open and nothing answers, so only the timeout tells (a
    killed node closes its connections and is noticed at once: 3.1 s here, against 8.5 s for
    a frozen one with a 5 s timeout). Node 0 ends with an error that says so within the
    timeout, and the last checkpoint resumes to the same weights as an uninterrupted run."""
    how, victim, epochs = "frozen", 1, 12
    data = write_csv(tmp_path / "data.csv")
    port = free_port()
    nodes = [launch(r, port, data, tmp_path / f"node{r}", epochs=epochs, timeout=TIMEOUT) for r in (0, 1)]
    checkpoint = tmp_path / "node0" / "checkpoint.pt"
    try:
        deadline = time.monotonic() + HANG
        while not checkpoint.exists():  # written atomically: once there, complete
            assert time.monotonic() < deadline and all(p.poll() is None for p in nodes), \
                [p.communicate() for p in nodes if p.poll() is not None]
            time.sleep(0.02)
        victim_tree = process_tree(nodes[victim].pid)
        signal_all(victim_tree, signal.SIGSTOP)
        stopped = time.monotonic()
        survivor = nodes[1 - victim]
        try:
            out, err = survivor.communicate(timeout=HANG)
        except subprocess.TimeoutExpired:
            pytest.fail(f"node {1 - victim} still runs {HANG} s after node {victim} was {how}: it hangs")
        waited = time.monotonic() - stopped
    finally:
        for p in nodes:
            signal_all(process_tree(p.pid), signal.SIGKILL)
        for p in nodes:
            p.wait()
    last = load_checkpoint(checkpoint)["epoch"]
    assert 1 <= last < epochs, f"the run ended (epoch {last}) before node {victim} was {how}"
    assert survivor.returncode == 5, out + err
    assert "lost contact with another process or node" in err, err
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"torchport: error[runtime]: distributed training failed on node {1 - victim} of 2: "), message
    assert f"The last checkpoint is '{checkpoint}' (epoch {last}); continue with --resume {checkpoint}" in message
    print(f"node {1 - victim} ended {waited:.1f} s after node {victim} was {how} (dist timeout {TIMEOUT} s)")

    # Resume the last checkpoint (here on one process; every node of a multi-node resume
    # passes the same --resume) and compare with an uninterrupted run.
    ds = CSVDataset(data, target="y")
    resumed = train("mlp", ds, out=tmp_path / "node0", config=replace(QUIET, epochs=None), resume=checkpoint)  # its own epochs
    whole = train("mlp", ds, out=tmp_path / "whole", config=replace(QUIET, epochs=epochs), model_options={"dropout": 0.0})
    assert resumed.epochs == epochs and load_checkpoint(resumed.checkpoint)["epoch"] == epochs
    assert_close_weights(load_checkpoint(resumed.checkpoint)["state_dict"], load_checkpoint(whole.checkpoint)["state_dict"])
    assert resumed.metrics["accuracy"] == whole.metrics["accuracy"]


def test_multi_node_options_are_checked():
    with pytest.raises(BadOptionError, match=r"master_port: required with nnodes > 1"):
        replace(QUIET, nnodes=2).check()
    with pytest.raises(BadOptionError, match=r"node_rank: expected 0..1 for 2 nodes, got 2"):
        replace(QUIET, nnodes=2, node_rank=2, master_port=29500).check()
    with pytest.raises(BadOptionError, match=r"batch_size 16 must be divisible by nproc x nnodes \(2 x 3\)"):
        replace(QUIET, nproc=2, nnodes=3, master_port=29500).check()
    with pytest.raises(BadOptionError, match=r"dist_timeout: expected > 0 seconds, got 0"):
        replace(QUIET, dist_timeout=0).check()
    proc = subprocess.run([sys.executable, "-m", "torchport", "train", "mlp", "--out", "unused", "--nnodes", "2"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "master_port: required with nnodes > 1" in proc.stderr, proc.stderr
