"""Datasets for the training path: real data that ships inside a package, seeded
synthetic data, and the user's own CSV file or image folder.

Every dataset holds its samples as two tensors, ``x`` (N, *input_shape) in raw
units and ``y``, and knows its task, labels and how to compute normalisation
statistics on a training split. Normalisation is not applied here: it becomes
the first layer of the trained model, so the exported artifact takes raw data.

    >>> from torchport.data import load_dataset
    >>> ds = load_dataset("wine")
    >>> ds.task, ds.input_shape, ds.labels
    ('classification', (13,), ['class_0', 'class_1', 'class_2'])
    >>> x, y = ds[0]
    >>> norm = ds.normalization(range(100))
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch.utils.data import Dataset

from torchport.errors import BadOptionError, DataError
from torchport.manifest import FeatureSpec

TASKS = ("classification", "regression", "segmentation")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class Normalization:
    """``(x - mean) / std`` with ``mean`` and ``std`` of ``shape``, which broadcasts
    against one sample (for example ``[C, 1, 1]`` for images: per channel)."""

    mean: list[float]
    std: list[float]
    shape: list[int]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=torch.float32).reshape(self.shape)
        std = torch.tensor(self.std, dtype=torch.float32).reshape(self.shape)
        return mean, std

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Normalization":
        return cls([float(v) for v in d["mean"]], [float(v) for v in d["std"]], [int(v) for v in d["shape"]])


class TorchportDataset(Dataset):
    """A dataset as tensors: ``x`` (N, *input_shape) raw, ``y`` (N,) int64 class
    indices, (N, 1) float32 regression targets or (N, 1, H, W) float32 masks."""

    name: str = ""
    task: str = "classification"
    labels: list[str] = []
    input_name: str = "input"
    #: which axis of one sample holds channels/features for normalisation, None for one scalar
    channel_axis: Optional[int] = 0
    description: str = ""
    #: (h, w) for pictures taken as uint8 [B, H, W, 3] and resized in the graph (images.py); None otherwise
    image_size: Optional[tuple[int, int]] = None
    #: a table's input columns in the model's order; () when the input is not a row of named columns
    features: Sequence[FeatureSpec] = ()

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise DataError(f"{self.name}: {len(x)} inputs but {len(y)} targets")
        for what, t in (("input", x), ("target", y)):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                i = int((~torch.isfinite(t)).reshape(len(t), -1).any(1).nonzero()[0])
                raise DataError(f"{self.name or 'dataset'}: {what} of sample {i} holds NaN or Inf; "
                                "expected finite numbers only")
        self.x = x.contiguous()
        self.y = y.contiguous()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def prepare(self, train_indices: Sequence[int]) -> None:
        """Learns what must come from the training split only, before training (CSV
        vocabularies); nothing for data already in tensors."""

    def feature_specs(self) -> list[dict[str, Any]]:
        """Every input column's name, type and vocabulary, in the model's order; [] when
        the input is not a row of named columns."""
        return [f.to_dict() for f in self.features]

    @property
    def n_outputs(self) -> int:
        """Classes for classification, target columns for regression, mask channels for segmentation."""
        if self.task == "classification":
            return len(self.labels)
        return int(self.y.shape[1]) if self.y.dim() > 1 else 1

    def normalization(self, indices: Sequence[int]) -> Normalization:
        """Mean and std per channel (or feature) over the samples at ``indices`` only."""
        x = self.x[torch.as_tensor(list(indices), dtype=torch.long)].to(torch.float64)
        if len(x) == 0:
            raise DataError(f"{self.name}: cannot compute normalisation on an empty split")
        if self.channel_axis is None:
            mean, std = x.mean().reshape(1), x.std().reshape(1)
            shape = [1] * len(self.input_shape)
        else:
            axis = self.channel_axis + 1  # past the sample axis
            dims = [d for d in range(x.dim()) if d != axis]
            mean, std = x.mean(dim=dims), x.std(dim=dims) if len(x) > 1 else torch.ones(x.shape[axis])
            shape = [1] * len(self.input_shape)
            shape[self.channel_axis] = self.input_shape[self.channel_axis]
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant columns stay as they are
        return Normalization(mean.tolist(), std.tolist(), shape)

    def target_normalization(self, indices: Sequence[int]) -> Optional[Normalization]:
        """Regression only: mean and std per target column over ``indices``; training learns
        ``(y - mean) / std`` and the exported graph turns predictions back into ``y``'s units."""
        if self.task != "regression":
            return None
        y = self.y[torch.as_tensor(list(indices), dtype=torch.long)].to(torch.float64)  # (n, K)
        mean = y.mean(0)
        std = y.std(0) if len(y) > 1 else torch.ones_like(mean)
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        return Normalization(mean.tolist(), std.tolist(), [int(mean.numel())])


def _sklearn(what: str):
    try:
        import sklearn.datasets as d
    except ImportError:
        raise BadOptionError(f"the {what} dataset needs scikit-learn: pip install 'torchport[train]'") from None
    return d


class Digits(TorchportDataset):
    name = "digits"
    description = "scikit-learn's 1,797 8x8 handwritten digits, pixels 0..16, 10 classes"
    labels = [str(i) for i in range(10)]
    input_name = "image"

    def __init__(self) -> None:
        d = _sklearn("digits").load_digits()
        x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
        super().__init__(x, torch.tensor(d.target, dtype=torch.int64))


class Wine(TorchportDataset):
    name = "wine"
    description = "scikit-learn's wine recognition table: 178 wines, 13 chemical features, 3 cultivars"
    input_name = "features"

    def __init__(self) -> None:
        d = _sklearn("wine").load_wine()
        self.labels = [str(n) for n in d.target_names]
        self.feature_names = list(d.feature_names)
        super().__init__(torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target, dtype=torch.int64))


class Thermometer(TorchportDataset):
    """The 11 paired readings of "Deep Learning with PyTorch", chapter 5: the
    input is the unknown unit ``t_u``, the target Celsius ``t_c``."""

    name = "thermometer"
    description = "the 11 thermometer readings of Deep Learning with PyTorch ch. 5: unknown units -> Celsius"
    task = "regression"
    input_name = "t_u"
    t_c = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]
    t_u = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]

    def __init__(self) -> None:
        super().__init__(torch.tensor(self.t_u).unsqueeze(1), torch.tensor(self.t_c).unsqueeze(1))  # (11, 1) each


def _smooth_noise(shape: Sequence[int], passes: int, g: torch.Generator) -> torch.Tensor:
    """Spatially correlated noise with unit-ish std: white noise box-blurred ``passes`` times."""
    x = torch.randn(1, 1, *shape, generator=g)
    pool = torch.nn.functional.avg_pool3d if len(shape) == 3 else torch.nn.functional.avg_pool2d
    for _ in range(passes):
        x = pool(x, 3, stride=1, padding=1, count_include_pad=False)
    return (x / x.std()).reshape(*shape)


class Nodules(TorchportDataset):
    """Synthetic CT-like volumes in Hounsfield-like units: lung tissue around -700 HU
    with textured noise and a vessel, and (label 1) a nodule: a soft blob of random
    radius, position and density. A stand-in for the LUNA project of the book."""

    name = "nodules"
    description = "synthetic CT-like 1x32x32x32 volumes with/without a nodule-like blob over textured noise"
    labels = ["no_nodule", "nodule"]
    input_name = "volume"

    def __init__(self, n: int = 600, size: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        coords = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * 3, indexing="ij"))  # (3, S, S, S)
        xs, ys = [], []
        for i in range(n):
            vol = -700.0 + 60.0 * _smooth_noise([size] * 3, 2, g) + 25.0 * torch.randn(size, size, size, generator=g)
            # a vessel: a bright tube along a random axis through a random point
            axis = int(torch.randint(0, 3, (1,), generator=g))
            centre = torch.rand(3, generator=g) * size
            others = [a for a in range(3) if a != axis]
            d2 = sum((coords[a] - centre[a]) ** 2 for a in others)
            vol = vol + 400.0 * torch.exp(-d2 / (2 * 1.2**2))
            label = i % 2
            if label:
                radius = 2.0 + 2.5 * float(torch.rand(1, generator=g))
                centre = size / 2 + (torch.rand(3, generator=g) - 0.5) * size * 0.5
                r2 = ((coords - centre.reshape(3, 1, 1, 1)) ** 2).sum(0)
                density = 500.0 + 300.0 * float(torch.rand(1, generator=g))
                vol = vol + density * torch.exp(-r2 / (2 * radius**2))
            xs.append(vol)
            ys.append(label)
        super().__init__(torch.stack(xs).unsqueeze(1), torch.tensor(ys, dtype=torch.int64))  # (N, 1, S, S, S)


class Shapes(TorchportDataset):
    """Synthetic grey images with one to three filled discs, squares and triangles
    over a gradient and noise; the target is the binary mask of the shapes."""

    name = "shapes"
    description = "synthetic 1x32x32 images of discs/squares/triangles with their masks (segmentation)"
    task = "segmentation"
    labels = ["shape"]
    input_name = "image"

    def __init__(self, n: int = 800, size: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
        rand = lambda lo, hi: lo + (hi - lo) * float(torch.rand(1, generator=g))  # noqa: E731
        images, masks = [], []
        for _ in range(n):
            mask = torch.zeros(size, size, dtype=torch.bool)
            for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
                cx, cy, r = rand(4, size - 4), rand(4, size - 4), rand(2.5, size / 5)
                kind = int(torch.randint(0, 3, (1,), generator=g))
                if kind == 0:
                    shape = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
                elif kind == 1:
                    shape = ((xx - cx).abs() <= r) & ((yy - cy).abs() <= r)
                else:
                    shape = (yy >= cy - r) & (yy <= cy + r) & ((xx - cx).abs() <= (yy - (cy - r)) / 2)
                mask |= shape
            gradient = rand(-40, 40) * (xx / size) + rand(-40, 40) * (yy / size)
            image = 100.0 + gradient + 15.0 * _smooth_noise([size, size], 1, g) + 10.0 * torch.randn(size, size, generator=g)
            image = image + mask.float() * rand(50, 90)
            images.append(image)
            masks.append(mask.float())
        super().__init__(torch.stack(images).unsqueeze(1), torch.stack(masks).unsqueeze(1))  # (N, 1, S, S) each


class Signals(TorchportDataset):
    """Synthetic 1D sequences (T, 1) of four waveform classes with random frequency,
    amplitude, phase, offset and noise; each waveform lasts a random length and the
    rest of the window is noise only (length jitter)."""

    name = "signals"
    description = "synthetic 1D sequences (64 steps) of 4 waveform classes with noise, phase and length jitter"
    labels = ["sine", "square", "sawtooth", "chirp"]
    input_name = "sequence"
    channel_axis = 1  # samples are (T, C)

    def __init__(self, n: int = 1200, length: int = 64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        t = torch.arange(length, dtype=torch.float32) / length  # (T,) in [0, 1)
        rand = lambda lo, hi: lo + (hi - lo) * float(torch.rand(1, generator=g))  # noqa: E731
        xs, ys = [], []
        for i in range(n):
            label = i % len(self.labels)
            cycles = t * rand(2.0, 5.0) + rand(0.0, 1.0)  # frequency and phase jitter
            if label == 3:
                cycles = cycles + t * t * rand(4.0, 8.0)  # frequency rises along the window
            frac = cycles - torch.floor(cycles)
            wave = [
                torch.sin(2 * math.pi * cycles),
                torch.where(frac < 0.5, 1.0, -1.0),
                2 * frac - 1,
                torch.sin(2 * math.pi * cycles),
            ][label]
            active = int(rand(0.6, 1.0) * length)  # length jitter
            start = int(torch.randint(0, length - active + 1, (1,), generator=g))
            envelope = torch.zeros(length)
            envelope[start : start + active] = 1.0
            x = rand(0.8, 2.0) * wave * envelope + rand(-1, 1) + 0.2 * torch.randn(length, generator=g)
            xs.append(x)
            ys.append(label)
        super().__init__(torch.stack(xs).unsqueeze(2), torch.tensor(ys, dtype=torch.int64))  # (N, T, 1)


#: one input column as the model sees it (kept as an import path): the manifest's FeatureSpec is its
#: one definition, so a CSV column and the artifact's feature contract cannot drift apart
Feature = FeatureSpec


def encode_rows(features: Sequence[Feature], columns: Sequence[Sequence[Any]]) -> torch.Tensor:
    """Raw columns (floats for numeric features, strings for categorical ones) -> the
    model's (N, sum of widths) float32 input: numbers as they are, categories one-hot."""
    parts = []
    for f, col in zip(features, columns):
        if f.type == "numeric":
            parts.append(torch.tensor(list(col), dtype=torch.float32).unsqueeze(1))  # (N, 1)
        else:
            index = {v: i for i, v in enumerate(f.vocabulary)}
            onehot = torch.zeros(len(col), max(len(f.vocabulary), 1), dtype=torch.float32)[:, : len(f.vocabulary)]
            for r, v in enumerate(col):
                if v in index:
                    onehot[r, index[v]] = 1.0
            parts.append(onehot)  # (N, len(vocabulary))
    return torch.cat(parts, dim=1)


def _number(cell: str) -> Optional[float]:
    # ASCII only, as the C++ runtime reads CSV cells: float() would also take other scripts' digits.
    if not cell.isascii():
        return None
    try:
        return float(cell)
    except ValueError:
        return None


class CSVDataset(TorchportDataset):
    """A CSV file with a header row; ``target`` names the column to predict.

    Feature columns are numeric, or categorical when declared in ``categorical`` or when
    any of their cells is not a number (``city = paris``): one-hot encoded over a
    vocabulary learnt on the training split (``prepare``). The target may hold numbers
    or strings; ``task`` defaults to classification when it holds strings or few
    distinct integers (the labels are their values, sorted), else regression."""

    input_name = "features"

    def __init__(self, path: Union[str, Path], target: str, task: Optional[str] = None, max_classes: int = 20,
                 categorical: Optional[Sequence[str]] = None) -> None:
        path = Path(path)
        self.name = f"csv:{path.name}"
        # The name only: the description travels into checkpoints and artifacts,
        # which must not carry the training machine's folders.
        self.description = f"CSV file {path.name}, target column '{target}'"
        if not path.is_file():
            raise DataError(f"CSV file '{path}' does not exist")
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            raise DataError(f"CSV file '{path}' is empty")
        header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)]
        if target not in header:
            raise DataError(f"CSV file '{path}': no column '{target}'; columns are {header}")
        if not body:
            raise DataError(f"CSV file '{path}' has a header but no rows")
        declared = set(categorical or ())
        unknown = sorted(declared - set(header))
        if unknown:
            raise DataError(f"CSV file '{path}': categorical column(s) {unknown} not in the header {header}")
        for line, row in enumerate(body, start=2):
            if len(row) != len(header):
                raise DataError(f"CSV file '{path}', line {line}: {len(row)} fields, the header has {len(header)}")
        cells = [[row[j].strip() for row in body] for j in range(len(header))]  # column-major
        t = header.index(target)
        self.features: list[Feature] = []
        columns: list[list[Any]] = []
        for j, name in enumerate(header):
            if j == t:
                continue
            words = [line for line, c in enumerate(cells[j], start=2) if c and _number(c) is None]
            blank = [line for line, c in enumerate(cells[j], start=2) if not c]
            if blank and not words and name not in declared:
                raise DataError(f"CSV file '{path}', line {blank[0]}, column '{name}': empty cell; expected a number")
            if name in declared or words:
                empty = [line for line, c in enumerate(cells[j], start=2) if not c]
                if empty:
                    raise DataError(f"CSV file '{path}', line {empty[0]}, column '{name}': empty category; "
                                    "fill it (for example with 'unknown')")
                self.features.append(Feature(name, "categorical", sorted(set(cells[j]))))
                columns.append(cells[j])
            else:
                columns.append(self._numbers(path, name, "column", cells[j]))
                self.features.append(Feature(name))
        self.feature_names = [f.name for f in self.features]
        if not self.features:
            raise DataError(f"CSV file '{path}': no feature columns besides the target '{target}'")
        self._columns = columns
        y, task = self._target(path, target, cells[t], task, max_classes)
        self.task = task
        super().__init__(encode_rows(self.features, columns), y)

    @staticmethod
    def _numbers(path: Path, name: str, kind: str, col: list[str]) -> list[float]:
        values = []
        for line, cell in enumerate(col, start=2):
            value = _number(cell)
            if value is None:
                raise DataError(f"CSV file '{path}', line {line}: {kind} '{name}' is not numeric ({cell!r}); "
                                "a regression target must be a number")
            if not math.isfinite(value):  # float() accepts nan and inf; a model trained on them is NaN
                raise DataError(f"CSV file '{path}', line {line}, {kind} '{name}': expected a finite number, got "
                                f"{cell!r}; remove or fill the row")
            values.append(value)
        return values

    def _target(self, path: Path, target: str, col: list[str], task: Optional[str], max_classes: int):
        blank = [line for line, c in enumerate(col, start=2) if not c]
        if blank:
            raise DataError(f"CSV file '{path}', line {blank[0]}: target column '{target}' is empty; "
                            "every row needs a target")
        strings = any(_number(c) is None for c in col)
        if strings and task != "regression":  # string labels: classes in sorted order
            self.labels = sorted(set(col))
            index = {v: i for i, v in enumerate(self.labels)}
            return torch.tensor([index[c] for c in col], dtype=torch.int64), "classification"
        y = torch.tensor(self._numbers(path, target, "target column", col), dtype=torch.float64)  # (N,)
        integral = bool(torch.all(y == torch.round(y)))
        if task is None:
            task = "classification" if integral and len(torch.unique(y)) <= max_classes else "regression"
        if task == "classification":
            if not integral:
                raise DataError(f"CSV file '{path}': target column '{target}' holds non-integers; use task='regression'")
            classes = torch.unique(y)
            self.labels = [str(int(c)) for c in classes.tolist()]
            return torch.searchsorted(classes, y).to(torch.int64), task  # (N,) class indices
        if task == "regression":
            self.labels = []
            return y.to(torch.float32).unsqueeze(1), task  # (N, 1)
        raise BadOptionError(f"task: a CSV file supports 'classification' or 'regression', got {task!r}")

    def prepare(self, train_indices: Sequence[int]) -> None:
        """Learns each categorical column's vocabulary on the training rows only, and
        re-encodes the inputs with it (a value seen only in validation is unknown: zeros)."""
        if not any(f.type == "categorical" for f in self.features):
            return
        rows = list(train_indices)
        self.features = [replace(f, vocabulary=sorted({col[i] for i in rows})) if f.type == "categorical" else f
                         for f, col in zip(self.features, self._columns)]
        self.x = encode_rows(self.features, self._columns).contiguous()


class ImageFolder(TorchportDataset):
    """A folder with one sub-folder per class of PNG/JPEG pictures of any size.

    Each file is decoded by the runtime's decoder into uint8 ``[1, H, W, 3]`` RGB
    (grey and palette pictures expanded, alpha dropped), then put through
    ``images.ImageFront(size)``: HWC -> CHW, bilinear resize to ``size``, / 255. So
    ``x`` is float32 (N, 3, h, w) in [0, 1], and an exported model takes the pictures
    themselves (uint8 ``[B, H, W, 3]``) and runs the same front in its graph."""

    input_name = "image"

    def __init__(self, root: Union[str, Path], size: tuple[int, int] = (32, 32)) -> None:
        from torchport.images import ImageFront, read_image

        root = Path(root)
        self.name = f"images:{root.name}"
        self.description = f"image folder {root.name}"  # no absolute path into artifacts (as above)
        if not root.is_dir():
            raise DataError(f"image folder '{root}' does not exist")
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        files = [(p, i) for i, c in enumerate(classes) for p in sorted((root / c).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise DataError(
                f"image folder '{root}' holds no images: expected one sub-folder per class with "
                f"{'/'.join(IMAGE_SUFFIXES)} files"
            )
        self.labels = classes
        self.image_size = (int(size[0]), int(size[1]))
        self.files = [p for p, _ in files]
        front = ImageFront(self.image_size)
        with torch.no_grad():
            x = torch.cat([front(read_image(p)) for p, _ in files])  # (N, 3, h, w) in [0, 1]
        super().__init__(x, torch.tensor([i for _, i in files], dtype=torch.int64))


@dataclass
class DatasetInfo:
    name: str
    build: Callable[..., TorchportDataset]
    description: str
    #: validation fraction used unless the caller says otherwise
    val_fraction: float = 0.2


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo("digits", Digits, Digits.description),
        DatasetInfo("wine", Wine, Wine.description),
        # 11 points: the book's line is the fit on all of them, so by default
        # nothing is held out and validation metrics are on the training data.
        DatasetInfo("thermometer", Thermometer, Thermometer.description, val_fraction=0.0),
        DatasetInfo("nodules", Nodules, Nodules.description),
        DatasetInfo("shapes", Shapes, Shapes.description),
        DatasetInfo("signals", Signals, Signals.description),
    ]
}


def load_dataset(name: str, **kwargs: Any) -> TorchportDataset:
    """A registered dataset by name; ``kwargs`` go to its constructor (``n``, ``seed``... for synthetic ones)."""
    if name not in DATASETS:
        raise BadOptionError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} (or a CSV file / image folder)")
    return DATASETS[name].build(**kwargs)


def resolve_dataset(
    name: Optional[str] = None,
    *,
    csv: Union[str, Path, None] = None,
    target: Optional[str] = None,
    images: Union[str, Path, None] = None,
    default: Optional[str] = None,
    categorical: Optional[Sequence[str]] = None,
) -> TorchportDataset:
    """Exactly one of a registered ``name``, a ``csv`` file (with ``target``) or an
    ``images`` folder; ``default`` when none is given."""
    given = [k for k, v in (("--data", name), ("--csv", csv), ("--images", images)) if v is not None]
    if len(given) > 1:
        raise BadOptionError(f"give one data source, got {' and '.join(given)}")
    if target is not None and csv is None:
        raise BadOptionError("--target goes with --csv")
    if categorical and csv is None:
        raise BadOptionError("--categorical goes with --csv")
    if csv is not None:
        if target is None:
            raise BadOptionError("--csv needs --target COLUMN (the column to predict)")
        return CSVDataset(csv, target, categorical=categorical)
    if images is not None:
        return ImageFolder(images)
    if name is None and default is None:
        raise BadOptionError("no data: give --data NAME, --csv FILE --target COL or --images DIR")
    return load_dataset(name or default)


def describe_datasets() -> str:
    """One line per registered dataset, plus the user's own data sources."""
    width = max(len(n) for n in DATASETS)
    lines = [f"{n:<{width}}  {d.description}" for n, d in DATASETS.items()]
    lines += [f"{'--csv':<{width}}  your CSV file: header row, numeric or categorical columns, --target COLUMN to predict",
              f"{'--images':<{width}}  your image folder: one sub-folder of PNG/JPEG files per class"]
    return "\n".join(lines)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded train/validation split of ``range(n)``; with ``val_fraction=0`` the
    validation indices are the training ones."""
    if not 0.0 <= val_fraction < 1.0:
        raise BadOptionError(f"val_fraction: expected 0 <= f < 1, got {val_fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n_val == 0:
        n_val = 1
    if n_val == 0:
        return order, order
    return order[n_val:], order[:n_val]
