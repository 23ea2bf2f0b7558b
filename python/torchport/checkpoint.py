"""Self-describing training checkpoints, and the step from checkpoint to artifact.

A checkpoint is a ``torch.save`` dict that a plain ``torch.load(weights_only=True)``
reads: the family and its config (enough to rebuild the model), the ``state_dict``,
the dataset's name, task, input shape and labels, the normalisation computed on
the training split, the validation metrics and history, the optimizer and
schedule state (to resume), and the torchport and torch versions.

    >>> from torchport.checkpoint import export_checkpoint
    >>> export_checkpoint("runs/digits/checkpoint.pt", "digits.pt", postprocess="softmax")
    PosixPath('digits.pt')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import torch

from torchport._files import write_atomically
from torchport._version import __version__
from torchport.errors import BadOptionError, CheckpointError

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "torchport.checkpoint"
#: the checkpoint layout this torchport writes and reads
FORMAT_VERSION = 1
REQUIRED = ("family", "config", "state_dict", "dataset", "normalization", "metrics", "epoch")


def save_checkpoint(path: Union[str, Path], content: dict[str, Any]) -> Path:
    """Writes ``content`` plus format and version fields; atomically (a temp file renamed over ``path``)."""
    path = Path(path)
    ckpt = {"format": FORMAT, "format_version": FORMAT_VERSION, "torchport_version": __version__,
            "torch_version": str(torch.__version__), **content}
    return write_atomically(path, lambda f: torch.save(ckpt, f))


def load_checkpoint(path: Union[str, Path]) -> dict[str, Any]:
    """Reads a checkpoint (a file, or a run folder's ``checkpoint.pt``) without executing code
    (``weights_only``) and checks that this torchport can use it."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if path.is_dir():  # a run folder: its checkpoint
        if not (path / CHECKPOINT_FILE).exists():
            raise CheckpointError(f"checkpoint '{path}' is a directory without {CHECKPOINT_FILE}; expected a run "
                                  f"folder (holding {CHECKPOINT_FILE}) or a checkpoint file")
        path = path / CHECKPOINT_FILE
    if not path.is_file():  # a FIFO or a device would block or never end
        raise CheckpointError(f"checkpoint '{path}' is not a regular file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load raises many types
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {str(e).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a torchport training checkpoint (no format '{FORMAT}')")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint '{path}' has format version {version}, written by torchport "
            f"{ckpt.get('torchport_version', '?')}; this torchport {__version__} reads version {FORMAT_VERSION}: "
            "upgrade torchport"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint '{path}' lacks {missing}")
    return ckpt


def pipeline_from_checkpoint(ckpt: dict[str, Any], postprocess: str = "none"):
    """The trained ``Pipeline`` (normalisation, model, postprocess) in eval mode; for an
    image checkpoint, behind its ``ImageFront``, taking uint8 [B, H, W, 3] pictures
    (``images.ImagePipeline``), as it exports."""
    from torchport.data import Normalization
    from torchport.models import Pipeline, build_model

    model = build_model(ckpt["family"], ckpt["config"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit the {ckpt['family']} config: {str(e).splitlines()[0]}") from None
    mean, std = Normalization.from_dict(ckpt["normalization"]).tensors()
    target = ckpt.get("target_normalization")  # regression checkpoints since issue 11; older ones have none
    target_mean, target_std = Normalization.from_dict(target).tensors() if target else (None, None)
    pipeline = Pipeline(model, mean, std, postprocess, target_mean, target_std)
    image = ckpt["dataset"].get("image")  # image folders since issue 11; older checkpoints take float (C, H, W)
    if image:
        from torchport.images import ImageFront, ImagePipeline

        return ImagePipeline(ImageFront(tuple(image["size"])), pipeline).eval()
    return pipeline.eval()


def example_inputs(ckpt: dict[str, Any], batch: int = 4, seed: int = 0) -> torch.Tensor:
    """Raw-scale inputs for export: normal noise with the training split's mean and std;
    for an image checkpoint, uint8 [B, H, W, 3] noise pictures of another size than the
    trained one (the graph resizes)."""
    from torchport.data import Normalization

    image = ckpt["dataset"].get("image")
    if image:
        h, w = image["size"]
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (batch, h + 5, w + 3, 3), generator=g, dtype=torch.uint8)  # [B, H, W, 3]

    mean, std = Normalization.from_dict(ckpt["normalization"]).tensors()
    g = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(batch, *ckpt["dataset"]["input_shape"], generator=g)  # (B, *input_shape)


def _output_name(task: str, postprocess: str) -> str:
    if task == "regression":
        return "prediction"
    if task == "segmentation":
        return {"none": "mask_logits", "softmax": "mask_probabilities", "argmax": "mask"}[postprocess]
    return {"none": "logits", "softmax": "probabilities", "argmax": "label"}[postprocess]


def export_checkpoint(
    checkpoint: Union[str, Path],
    out: Union[str, Path],
    *,
    postprocess: str = "none",
    force: bool = False,
    inputs: Optional[torch.Tensor] = None,
    name: Optional[str] = None,
    format: str = "torchscript",
    delegate: Optional[str] = None,
    optimize: str = "none",
) -> Union[Path, dict[str, Path]]:
    """Exports a checkpoint as a torchport artifact whose graph holds the normalisation
    (and ``postprocess``: ``softmax`` or ``argmax``), so a C++ caller feeds raw data.
    Labels, normalisation and validation metrics go into the manifest's metadata.
    An existing ``out`` is replaced only with ``force=True``. ``inputs`` become the
    golden examples (default: noise at the training data's scale). ``format`` is
    export's: ``"torchscript"``, ``"aoti"`` (.pt2), ``"onnx"``, ``"executorch"``
    (.pte, lowered to ``delegate``) or ``"all"``; so is
    ``optimize`` (``"none"``, ``"freeze"`` or ``"fast"``, TorchScript only).

        >>> export_checkpoint("runs/wine/checkpoint.pt", "wine.pt", postprocess="argmax")
    """
    from torchport.exporter import export

    ckpt = load_checkpoint(checkpoint)
    task = ckpt["dataset"]["task"]
    if postprocess != "none" and task == "regression":
        raise BadOptionError(f"postprocess {postprocess!r} needs classes; this is a regression model")
    pipeline = pipeline_from_checkpoint(ckpt, postprocess)
    out = Path(out)
    if out.exists() and not force and format != "all":
        raise BadOptionError(f"'{out}' exists; pass force=True (--force) to replace it")
    if inputs is None:
        inputs = example_inputs(ckpt)
    input_name = ckpt["dataset"]["input_name"]
    dynamic = [0, 1] if ckpt["family"] in ("rnn", "transformer") else [0]  # batch, and time for sequences
    image = ckpt["dataset"].get("image")
    images = None
    if image:  # pictures of any size: [batch, height, width, 3]
        from torchport.data import Normalization
        from torchport.manifest import ImageSpec

        dynamic = {0: "batch", 1: "height", 2: "width"}
        norm = Normalization.from_dict(ckpt["normalization"])
        images = {input_name: ImageSpec(tuple(image["size"]), tuple(norm.mean), tuple(norm.std))}
    metrics = {k: v for k, v in ckpt["metrics"].items() if k != "confusion"}
    metadata = {
        "family": ckpt["family"],
        "config": ckpt["config"],
        "task": task,
        "dataset": ckpt["dataset"]["name"],
        "labels": ckpt["dataset"]["labels"],
        "preprocessing": {"normalization": ckpt["normalization"], "inside_model": True,
                          "input": f"raw {ckpt['dataset']['description']}"
                          + (" as uint8 [B, H, W, 3] RGB pictures (the input's image contract)" if image else "")},
        **({"target_scaling": {**ckpt["target_normalization"], "inside_model": True}}
           if ckpt.get("target_normalization") else {}),
        "postprocess": postprocess,
        "validation": {**metrics, "held_out": ckpt.get("split", {}).get("held_out", True), "epochs": ckpt["epoch"]},
        "trained_with": {"torchport": ckpt.get("torchport_version"), "torch": ckpt.get("torch_version")},
    }
    return export(
        pipeline,
        inputs,
        out,
        method="script",
        input_names=[input_name],
        output_names=[_output_name(task, postprocess)],
        dynamic_dims={input_name: dynamic},
        metadata=metadata,
        name=name or f"{ckpt['family']}_{ckpt['dataset']['name']}".replace(":", "_"),
        overwrite=force,  # replaced atomically: the old file stays until the new one is complete
        format=format,
        delegate=delegate,
        labels=ckpt["dataset"]["labels"],
        features=ckpt["dataset"].get("features", []),  # checkpoints before issue 11 have none
        images=images,
        optimize=optimize,
    )


def model_from_checkpoint(checkpoint: str, artifact: str):
    """The eager model an artifact was exported from: the checkpoint rebuilt with
    the postprocess the artifact's manifest records."""
    from torchport.manifest import read_manifest

    postprocess = read_manifest(artifact).metadata.get("postprocess", "none")
    return pipeline_from_checkpoint(load_checkpoint(checkpoint), postprocess)
