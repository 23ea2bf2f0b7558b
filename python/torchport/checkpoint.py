"""Self-describing training checkpoints, and the step from checkpoint to artifact.

A checkpoint is a ``torch.save`` dict that a plain ``torch.load(weights_only=True)``
reads: the family and its config (enough to rebuild the model), the ``state_dict``,
the dataset's name, task, input shape and labels, the normalisation computed on
the training split, the validation metrics and history, the optimizer and
schedule state (to resume), and the torchport and torch versions. ``Checkpoint``
is that layout's one definition: the loop writes one (``Checkpoint.save``), and
every reader goes through ``read_checkpoint`` or ``Checkpoint.from_dict``.

    >>> from torchport.checkpoint import export_checkpoint
    >>> export_checkpoint("runs/digits/checkpoint.pt", "digits.pt", postprocess="softmax")
    PosixPath('digits.pt')
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

import torch

from torchport._files import write_atomically
from torchport._version import __version__
from torchport.errors import BadOptionError, CheckpointError
from torchport.manifest import FeatureSpec

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "torchport.checkpoint"
#: the checkpoint layout this torchport writes and reads
FORMAT_VERSION = 1
REQUIRED = ("family", "config", "state_dict", "dataset", "normalization", "metrics", "epoch")


@dataclass
class TrainedOn:
    """The dataset a checkpoint was trained on: its ``dataset`` entry."""

    name: str
    description: str
    task: str
    input_shape: list[int]
    input_name: str
    labels: list[str]
    features: list[FeatureSpec] = field(default_factory=list)  # tabular data; checkpoints before issue 11 have none
    image_size: Optional[list[int]] = None  # (H, W) of image folders, since issue 11; older checkpoints take float (C, H, W)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "task": self.task,
                "input_shape": list(self.input_shape), "input_name": self.input_name, "labels": list(self.labels),
                "features": [f.to_dict() for f in self.features],
                **({"image": {"size": list(self.image_size)}} if self.image_size else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainedOn":
        features = [FeatureSpec(f["name"], f.get("type", "numeric"), tuple(f.get("vocabulary", ())))
                    for f in d.get("features", [])]
        image = d.get("image")
        return cls(d["name"], d["description"], d["task"], list(d["input_shape"]), d["input_name"], list(d["labels"]),
                   features, list(image["size"]) if image else None)


@dataclass
class Checkpoint:
    """The checkpoint layout's one definition: enough to rebuild the model (``family``,
    ``config``, ``state_dict``), the data it expects (``dataset``, the training split's
    ``normalization``), how it did (``metrics``, ``history``) and what resuming needs.
    ``to_dict`` is the dict ``torch.save`` writes (the keys and their order as torchport
    has always written them), ``from_dict`` reads one back and checks it.

        >>> ckpt = read_checkpoint("runs/wine"); ckpt.family, ckpt.dataset.task, ckpt.epoch
        ('mlp', 'classification', 30)
    """

    family: str
    config: dict[str, Any]
    dataset: TrainedOn
    normalization: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, Any]
    epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    target_normalization: Optional[dict[str, Any]] = None  # regression since issue 11; older ones have none
    split: Optional[dict[str, Any]] = None
    train_config: Optional[dict[str, Any]] = None  # asdict(TrainConfig): resuming trains on with it
    optimizer: Optional[dict[str, Any]] = None
    scheduler: Optional[dict[str, Any]] = None
    torchport_version: str = __version__  # of the torchport and torch that wrote it
    torch_version: str = str(torch.__version__)

    def to_dict(self) -> dict[str, Any]:
        optional = {"target_normalization": self.target_normalization, "split": self.split,
                    "train_config": self.train_config}
        resume = {"optimizer": self.optimizer, "scheduler": self.scheduler}
        return {
            **_header(self.torchport_version, self.torch_version), "family": self.family, "config": self.config,
            "dataset": self.dataset.to_dict(), "normalization": self.normalization,
            **{k: v for k, v in optional.items() if v is not None},
            "state_dict": self.state_dict, "metrics": self.metrics, "history": self.history, "epoch": self.epoch,
            **{k: v for k, v in resume.items() if v is not None},
        }

    @classmethod
    def from_dict(cls, d: Any, where: Union[str, Path] = "<dict>") -> "Checkpoint":
        """A checkpoint from what ``torch.load`` gave for the file ``where`` (named in errors),
        after checking that it is one and that this torchport reads its format version."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CheckpointError(f"'{where}' is not a torchport training checkpoint (no format '{FORMAT}')")
        version = d.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint '{where}' has format version {version}, written by torchport "
                f"{d.get('torchport_version', '?')}; this torchport {__version__} reads version {FORMAT_VERSION}: "
                "upgrade torchport"
            )
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise CheckpointError(f"checkpoint '{where}' lacks {missing}")
        try:
            return cls(d["family"], d["config"], TrainedOn.from_dict(d["dataset"]), d["normalization"], d["state_dict"],
                       d["metrics"], d["epoch"], list(d.get("history", [])), d.get("target_normalization"),
                       d.get("split"), d.get("train_config"), d.get("optimizer"), d.get("scheduler"),
                       d.get("torchport_version", "?"), d.get("torch_version", "?"))
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"checkpoint '{where}': the dataset entry lacks or mistypes {e}; expected the fields "
                                  f"{[f.name for f in fields(TrainedOn)]}") from None

    def save(self, path: Union[str, Path]) -> Path:
        """Writes the checkpoint atomically (a temp file renamed over ``path``)."""
        return save_checkpoint(path, self.to_dict())


def _header(torchport_version: str = __version__, torch_version: str = str(torch.__version__)) -> dict[str, Any]:
    """The fields that open every checkpoint: what it is and who wrote it."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "torchport_version": torchport_version,
            "torch_version": torch_version}


def save_checkpoint(path: Union[str, Path], content: dict[str, Any]) -> Path:
    """Writes ``content`` (``Checkpoint.to_dict()``, or any dict of tensors and plain data)
    after the format and version fields; atomically (a temp file renamed over ``path``)."""
    ckpt = {**_header(), **content}
    return write_atomically(Path(path), lambda f: torch.save(ckpt, f))


def _checkpoint_file(path: Path) -> Path:
    """``path``, or a run folder's ``checkpoint.pt``, refused unless it is a regular file."""
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if path.is_dir():  # a run folder: its checkpoint
        if not (path / CHECKPOINT_FILE).exists():
            raise CheckpointError(f"checkpoint '{path}' is a directory without {CHECKPOINT_FILE}; expected a run "
                                  f"folder (holding {CHECKPOINT_FILE}) or a checkpoint file")
        path = path / CHECKPOINT_FILE
    if not path.is_file():  # a FIFO or a device would block or never end
        raise CheckpointError(f"checkpoint '{path}' is not a regular file")
    return path


def read_checkpoint(path: Union[str, Path]) -> Checkpoint:
    """Reads a checkpoint (a file, or a run folder's ``checkpoint.pt``) without executing code
    (``weights_only``) and checks that this torchport can use it."""
    path = _checkpoint_file(Path(path))
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load raises many types
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {str(e).splitlines()[0]}") from None
    return Checkpoint.from_dict(raw, path)


def load_checkpoint(path: Union[str, Path]) -> dict[str, Any]:
    """``read_checkpoint`` as the plain dict on disk (``Checkpoint.to_dict``), for callers
    that index it: ``load_checkpoint("runs/wine")["epoch"]``."""
    return read_checkpoint(path).to_dict()


def _as_checkpoint(ckpt: Union[Checkpoint, dict[str, Any]]) -> Checkpoint:
    return ckpt if isinstance(ckpt, Checkpoint) else Checkpoint.from_dict(ckpt)


def pipeline_from_checkpoint(ckpt: Union[Checkpoint, dict[str, Any]], postprocess: str = "none"):
    """The trained ``Pipeline`` (normalisation, model, postprocess) in eval mode; for an
    image checkpoint, behind its ``ImageFront``, taking uint8 [B, H, W, 3] pictures
    (``images.ImagePipeline``), as it exports. ``ckpt``: a ``Checkpoint`` or its dict."""
    from torchport.data import Normalization
    from torchport.models import Pipeline, build_model

    ckpt = _as_checkpoint(ckpt)
    model = build_model(ckpt.family, ckpt.config)
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit the {ckpt.family} config: {str(e).splitlines()[0]}") from None
    mean, std = Normalization.from_dict(ckpt.normalization).tensors()
    target = ckpt.target_normalization
    target_mean, target_std = Normalization.from_dict(target).tensors() if target else (None, None)
    pipeline = Pipeline(model, mean, std, postprocess, target_mean, target_std)
    if ckpt.dataset.image_size:
        from torchport.images import ImageFront, ImagePipeline

        return ImagePipeline(ImageFront(tuple(ckpt.dataset.image_size)), pipeline).eval()
    return pipeline.eval()


def example_inputs(ckpt: Union[Checkpoint, dict[str, Any]], batch: int = 4, seed: int = 0) -> torch.Tensor:
    """Raw-scale inputs for export: normal noise with the training split's mean and std;
    for an image checkpoint, uint8 [B, H, W, 3] noise pictures of another size than the
    trained one (the graph resizes)."""
    from torchport.data import Normalization

    ckpt = _as_checkpoint(ckpt)
    if ckpt.dataset.image_size:
        h, w = ckpt.dataset.image_size
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (batch, h + 5, w + 3, 3), generator=g, dtype=torch.uint8)  # [B, H, W, 3]

    mean, std = Normalization.from_dict(ckpt.normalization).tensors()
    g = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(batch, *ckpt.dataset.input_shape, generator=g)  # (B, *input_shape)


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

    ckpt = read_checkpoint(checkpoint)
    task = ckpt.dataset.task
    if postprocess != "none" and task == "regression":
        raise BadOptionError(f"postprocess {postprocess!r} needs classes; this is a regression model")
    pipeline = pipeline_from_checkpoint(ckpt, postprocess)
    out = Path(out)
    if out.exists() and not force and format != "all":
        raise BadOptionError(f"'{out}' exists; pass force=True (--force) to replace it")
    if inputs is None:
        inputs = example_inputs(ckpt)
    input_name = ckpt.dataset.input_name
    dynamic = [0, 1] if ckpt.family in ("rnn", "transformer") else [0]  # batch, and time for sequences
    image = ckpt.dataset.image_size
    images = None
    if image:  # pictures of any size: [batch, height, width, 3]
        from torchport.data import Normalization
        from torchport.manifest import ImageSpec

        dynamic = {0: "batch", 1: "height", 2: "width"}
        norm = Normalization.from_dict(ckpt.normalization)
        images = {input_name: ImageSpec(tuple(image), tuple(norm.mean), tuple(norm.std))}
    metrics = {k: v for k, v in ckpt.metrics.items() if k != "confusion"}
    metadata = {
        "family": ckpt.family,
        "config": ckpt.config,
        "task": task,
        "dataset": ckpt.dataset.name,
        "labels": ckpt.dataset.labels,
        "preprocessing": {"normalization": ckpt.normalization, "inside_model": True,
                          "input": f"raw {ckpt.dataset.description}"
                          + (" as uint8 [B, H, W, 3] RGB pictures (the input's image contract)" if image else "")},
        **({"target_scaling": {**ckpt.target_normalization, "inside_model": True}} if ckpt.target_normalization else {}),
        "postprocess": postprocess,
        "validation": {**metrics, "held_out": (ckpt.split or {}).get("held_out", True), "epochs": ckpt.epoch},
        "trained_with": {"torchport": ckpt.torchport_version, "torch": ckpt.torch_version},
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
        name=name or f"{ckpt.family}_{ckpt.dataset.name}".replace(":", "_"),
        overwrite=force,  # replaced atomically: the old file stays until the new one is complete
        format=format,
        delegate=delegate,
        labels=ckpt.dataset.labels,
        features=ckpt.dataset.features,
        images=images,
        optimize=optimize,
    )


def model_from_checkpoint(checkpoint: str, artifact: str):
    """The eager model an artifact was exported from: the checkpoint rebuilt with
    the postprocess the artifact's manifest records."""
    from torchport.manifest import read_manifest

    postprocess = read_manifest(artifact).metadata.get("postprocess", "none")
    return pipeline_from_checkpoint(read_checkpoint(checkpoint), postprocess)
