"""The main job end to end: train a small CNN on scikit-learn's 8x8 digits with
torchport.train, export the checkpoint, run it in the C++ binary on held-out
images, prove parity.

    >>> from torchport.demo import run_demo
    >>> run_demo(out=Path("runs/demo"), epochs=12)
    True
"""

from __future__ import annotations

from pathlib import Path

import torch

from torchport.data import Digits


def run_demo(out: Path = Path("runs/demo"), epochs: int = 12, seed: int = 0) -> bool:
    """Train, export, run in C++, compare. True when Python and C++ agree."""
    from torchport.checkpoint import export_checkpoint
    from torchport.parity import run_binary, verify
    from torchport.train import TrainConfig, rebuild, train

    data = Digits()
    config = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, seed=seed, device="cpu", progress=False,
                         tensorboard=False)
    print(f"training cnn on {len(data)} digits (20 % held out), {torch.get_num_threads()} threads")
    result = train("cnn", data, out=out, config=config, force=True)  # the demo starts over each time
    val_idx = result.val_indices  # the held-out split train() made
    for row in result.history:
        print(f"  epoch {row['epoch']:2d}/{epochs}  loss {row['train_loss']:.4f}  train acc {row['train_accuracy']:.4f}"
              f"  val acc {row['val_accuracy']:.4f}")
    print(f"  trained in {result.seconds:.1f} s; checkpoint {result.checkpoint}")

    model = rebuild(result.checkpoint)  # raw pixels in, logits out
    val_x, val_y = data.x[val_idx], data.y[val_idx]  # (N, 1, 8, 8) raw 0..16, (N,)
    with torch.inference_mode():
        py_pred = model(val_x).argmax(1)
    py_acc = (py_pred == val_y).float().mean().item()

    artifact = export_checkpoint(result.checkpoint, out / "digits_cnn.pt", force=True, inputs=val_x[:4], name="digits_cnn")
    print(f"exported {artifact}")

    (logits,) = run_binary(artifact, [val_x])
    cpp_pred = logits.argmax(1)
    cpp_acc = (cpp_pred == val_y).float().mean().item()
    print(f"held-out accuracy: Python {py_acc:.4f}   C++ (torchport-run) {cpp_acc:.4f}   "
          f"predictions identical: {bool(torch.equal(py_pred, cpp_pred))}")

    report = verify(artifact, model=model, inputs=[val_x])
    print(report)
    agree = report.ok and py_acc == cpp_acc and bool(torch.equal(py_pred, cpp_pred))
    print("demo: Python and C++ agree" if agree else "demo: Python and C++ DISAGREE")
    return agree
