"""The model zoo: seven families, each a plain ``nn.Module`` built from a dataclass
config, each compiled with ``torch.jit.script`` (no tracing needed).

    >>> from torchport.models import build_model, config_for
    >>> cfg = config_for("cnn", input_shape=(1, 8, 8), n_outputs=10)
    >>> model = build_model("cnn", cfg)
    >>> model(torch.rand(4, 1, 8, 8)).shape
    torch.Size([4, 10])

``Pipeline`` puts the normalisation in front of a model and an optional
postprocessing (softmax, argmax) behind it: that is what is trained and exported,
so the artifact takes raw data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from torchport.errors import BadOptionError

# ---------------------------------------------------------------------------- linear, mlp


@dataclass
class LinearConfig:
    in_features: int = 1
    out_features: int = 1


class Linear(nn.Module):
    """``y = x W^T + b`` on the flattened sample."""

    def __init__(self, cfg: LinearConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.in_features, cfg.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))  # (B, F) -> (B, out)


@dataclass
class MLPConfig:
    in_features: int = 1
    out_features: int = 1
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    dropout: float = 0.1


class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = cfg.in_features
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = h
        layers.append(nn.Linear(width, cfg.out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))  # (B, F) -> (B, out)


# ---------------------------------------------------------------------------- cnn (2D)


@dataclass
class CNNConfig:
    in_channels: int = 1
    n_classes: int = 10
    channels: list[int] = field(default_factory=lambda: [16, 32])
    hidden: int = 64
    pool_size: int = 4
    dropout: float = 0.1


class CNN(nn.Module):
    """Conv-BN-ReLU blocks, one 2x max-pool, an adaptive pool to a fixed grid and an MLP head."""

    def __init__(self, cfg: CNNConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = cfg.in_channels
        for c in cfg.channels:
            layers += [nn.Conv2d(width, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]  # (B, c, H, W)
            width = c
        layers += [nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(cfg.pool_size)]  # (B, c, P, P)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),  # (B, c * P * P)
            nn.Linear(width * cfg.pool_size**2, cfg.hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.n_classes),  # (B, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, C, H, W) -> (B, n_classes)


# ---------------------------------------------------------------------------- cnn3d


@dataclass
class CNN3DConfig:
    in_channels: int = 1
    n_classes: int = 2
    conv_channels: int = 8
    depth: int = 3
    input_size: list[int] = field(default_factory=lambda: [32, 32, 32])


class Block3d(nn.Module):
    """Two 3x3x3 convolutions and a 2x max-pool, as in the book's LunaBlock."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, padding=1, bias=True)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, bias=True)
        self.pool = nn.MaxPool3d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))  # (B, cout, D, H, W)
        x = F.relu(self.conv2(x))
        return self.pool(x)  # (B, cout, D/2, H/2, W/2)


class CNN3D(nn.Module):
    """In the spirit of the book's LunaModel: a batch-norm tail, blocks that double the
    channels and halve the volume, a linear head."""

    def __init__(self, cfg: CNN3DConfig) -> None:
        super().__init__()
        self.tail = nn.BatchNorm3d(cfg.in_channels)
        blocks = []
        width, c = cfg.in_channels, cfg.conv_channels
        for _ in range(cfg.depth):
            blocks.append(Block3d(width, c))
            width, c = c, c * 2
        self.blocks = nn.Sequential(*blocks)
        cells = 1
        for s in cfg.input_size:
            cells *= s // 2**cfg.depth
        if cells == 0:
            raise BadOptionError(f"cnn3d: input {cfg.input_size} is too small for depth {cfg.depth}")
        self.head = nn.Linear(width * cells, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.tail(x))  # (B, C, D, H, W) -> (B, 8 * 2^(depth-1), D/2^depth, ...)
        return self.head(x.flatten(1))  # (B, n_classes)


# ---------------------------------------------------------------------------- unet


@dataclass
class UNetConfig:
    in_channels: int = 1
    n_classes: int = 1
    base: int = 16
    depth: int = 2


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
    )


class Up(nn.Module):
    """Transposed-conv upsampling, concatenation with the skip, double conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = _double_conv(2 * cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, cout, 2H, 2W)
        return self.conv(torch.cat([x, skip], dim=1))  # (B, 2 cout, 2H, 2W) -> (B, cout, 2H, 2W)


class UNet(nn.Module):
    """A small U-Net: ``depth`` down-steps of 2x, channels ``base * 2^level``; one
    logit per pixel and class (sides must be divisible by ``2^depth``)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        widths = [cfg.base * 2**i for i in range(cfg.depth + 1)]
        self.inc = _double_conv(cfg.in_channels, widths[0])
        self.downs = nn.ModuleList([_double_conv(widths[i], widths[i + 1]) for i in range(cfg.depth)])
        self.ups = nn.ModuleList([Up(widths[i + 1], widths[i]) for i in reversed(range(cfg.depth))])
        self.out = nn.Conv2d(widths[0], cfg.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inc(x)  # (B, base, H, W)
        skips: list[torch.Tensor] = []
        for down in self.downs:
            skips.append(x)
            x = down(F.max_pool2d(x, 2))  # (B, 2c, H/2, W/2)
        for up in self.ups:
            x = up(x, skips.pop())  # (B, c/2, 2H, 2W)
        return self.out(x)  # (B, n_classes, H, W)


# ---------------------------------------------------------------------------- rnn


@dataclass
class RNNConfig:
    input_size: int = 1
    n_classes: int = 2
    cell: str = "lstm"
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.0
    #: "mean" over time steps or the "last" step
    pool: str = "mean"


class RNN(nn.Module):
    """An LSTM or GRU over (B, T, C) sequences; the class comes from the outputs
    averaged over time (or from the last step)."""

    def __init__(self, cfg: RNNConfig) -> None:
        super().__init__()
        if cfg.cell not in ("lstm", "gru"):
            raise BadOptionError(f"rnn: cell must be 'lstm' or 'gru', got {cfg.cell!r}")
        if cfg.pool not in ("mean", "last"):
            raise BadOptionError(f"rnn: pool must be 'mean' or 'last', got {cfg.pool!r}")
        self.mean_pool = cfg.pool == "mean"
        cls = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = cls(cfg.input_size, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                       dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.fc = nn.Linear(cfg.hidden, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, T, C) -> (B, T, hidden)
        h = out.mean(dim=1) if self.mean_pool else out[:, -1]  # (B, hidden)
        return self.fc(h)  # (B, n_classes)


# ---------------------------------------------------------------------------- transformer


@dataclass
class TransformerConfig:
    input_size: int = 1
    n_classes: int = 2
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    ff: int = 128
    dropout: float = 0.1
    max_len: int = 512
    causal: bool = False


class SelfAttention(nn.Module):
    """Multi-head self-attention written out (no fused fast path, so eager and
    TorchScript run the same kernels)."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % heads:
            raise BadOptionError(f"transformer: d_model {d_model} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)  # (B, h, T, C/h)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.heads)  # (B, h, T, T)
        if mask is not None:
            att = att.masked_fill(mask, float("-inf"))  # mask: (B or 1, 1, T or 1, T), True = blocked
        att = self.drop(torch.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(y)


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg.d_model, cfg.heads, cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.ff), nn.GELU(), nn.Linear(cfg.ff, cfg.d_model), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)  # (B, T, C), pre-norm residual
        return x + self.ff(self.ln2(x))


class Transformer(nn.Module):
    """A small pre-norm encoder over (B, T, C) sequences: input projection, sinusoidal
    positional encoding, attention with an optional causal mask and an optional
    padding mask from ``lengths``, masked mean pooling, a linear head."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.causal = cfg.causal
        self.inp = nn.Linear(cfg.input_size, cfg.d_model)
        pos = torch.arange(cfg.max_len, dtype=torch.float32).unsqueeze(1)  # (L, 1)
        freq = torch.exp(torch.arange(0, cfg.d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / cfg.d_model))
        pe = torch.zeros(cfg.max_len, cfg.d_model)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq)
        self.register_buffer("pe", pe)  # (L, C)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(cfg.layers)])
        self.ln = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, cfg.n_classes)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, T, _ = x.shape
        h = self.drop(self.inp(x) + self.pe[:T])  # (B, T, C)
        mask: Optional[torch.Tensor] = None
        valid = torch.ones(B, T, dtype=torch.bool, device=x.device)  # (B, T)
        if lengths is not None:
            valid = torch.arange(T, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
            mask = ~valid[:, None, None, :]  # (B, 1, 1, T): keys past each length
        if self.causal:
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)[None, None]  # (1, 1, T, T)
            mask = future if mask is None else (mask | future)
        for layer in self.layers:
            h = layer(h, mask)
        h = self.ln(h)
        w = valid.to(h.dtype).unsqueeze(2)  # (B, T, 1)
        pooled = (h * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, C)
        return self.fc(pooled)  # (B, n_classes)


# ---------------------------------------------------------------------------- pipeline


class Pipeline(nn.Module):
    """Raw data in, predictions out: ``(x - mean) / std`` -> model -> postprocess.

    ``postprocess`` is ``"none"`` (logits or values), ``"softmax"`` (class
    probabilities; a sigmoid for a one-channel mask) or ``"argmax"`` (class
    indices, int64; ``logit > 0`` for a one-channel mask).

    A regression model learns standardised targets; ``target_mean`` and ``target_std``
    (shape ``[n_outputs]``) turn its output back into the target's units inside the graph."""

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor, postprocess: str = "none",
                 target_mean: Optional[torch.Tensor] = None, target_std: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        if postprocess not in POSTPROCESS:
            raise BadOptionError(f"postprocess: expected one of {POSTPROCESS}, got {postprocess!r}")
        self.model = model
        self.register_buffer("mean", mean.to(torch.float32))  # broadcasts against one sample
        self.register_buffer("std", std.to(torch.float32))
        self.postprocess = postprocess
        # A constant for TorchScript: models without target scaling keep their graph as it was.
        self.destandardise = target_mean is not None
        self.register_buffer("target_mean", (target_mean if target_mean is not None else torch.zeros(1)).to(torch.float32))
        self.register_buffer("target_std", (target_std if target_std is not None else torch.ones(1)).to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model((x - self.mean) / self.std)  # (B, n_outputs, ...)
        if self.destandardise:
            return y * self.target_std + self.target_mean  # (B, n_outputs) in the target's units
        if self.postprocess == "softmax":
            return torch.sigmoid(y) if y.shape[1] == 1 else torch.softmax(y, dim=1)
        if self.postprocess == "argmax":
            return (y > 0).to(torch.int64) if y.shape[1] == 1 else y.argmax(dim=1)
        return y


POSTPROCESS = ("none", "softmax", "argmax")

# ---------------------------------------------------------------------------- registry


@dataclass
class Family:
    name: str
    config: type
    build: type
    #: sample layout the family takes: "any" (flattened), "image", "volume", "sequence"
    layout: str
    tasks: tuple[str, ...]
    default_dataset: str
    description: str


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("linear", LinearConfig, Linear, "any", ("regression", "classification"), "thermometer",
               "one linear layer on the flattened sample"),
        Family("mlp", MLPConfig, MLP, "any", ("classification", "regression"), "wine",
               "multi-layer perceptron with ReLU and dropout"),
        Family("cnn", CNNConfig, CNN, "image", ("classification",), "digits",
               "2D conv-batchnorm-relu blocks, max-pool, MLP head"),
        Family("cnn3d", CNN3DConfig, CNN3D, "volume", ("classification",), "nodules",
               "3D conv blocks in the spirit of the book's LUNA nodule classifier"),
        Family("unet", UNetConfig, UNet, "image", ("segmentation",), "shapes",
               "small U-Net: one logit per pixel and class"),
        Family("rnn", RNNConfig, RNN, "sequence", ("classification",), "signals",
               "LSTM or GRU over (T, C) sequences, mean-pooled (or last-step) head"),
        Family("transformer", TransformerConfig, Transformer, "sequence", ("classification",), "signals",
               "small encoder: positional encoding, causal/padding masks, mean pooling"),
    ]
}

_LAYOUT_DIMS = {"image": 3, "volume": 4, "sequence": 2}
_LAYOUT_WORDS = {"image": "images (C, H, W)", "volume": "volumes (C, D, H, W)", "sequence": "sequences (T, C)"}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise BadOptionError(f"unknown model family {name!r}; choose from {', '.join(FAMILIES)}")
    return FAMILIES[name]


def config_for(family: str, input_shape: tuple[int, ...], n_outputs: int, task: str = "classification",
               **overrides: Any) -> Any:
    """The family's config for samples of ``input_shape`` and ``n_outputs`` outputs;
    ``overrides`` set any other field (``hidden=[128]``, ``cell="gru"``...)."""
    fam = get_family(family)
    if task not in fam.tasks:
        raise BadOptionError(f"model family {family!r} does {', '.join(fam.tasks)}, not {task}")
    want = _LAYOUT_DIMS.get(fam.layout)
    if want is not None and len(input_shape) != want:
        raise BadOptionError(
            f"model family {family!r} takes {_LAYOUT_WORDS[fam.layout]}; the dataset gives samples of shape {list(input_shape)}"
        )
    shape = list(input_shape)
    derived: dict[str, Any] = {
        "linear": lambda: {"in_features": math.prod(shape), "out_features": n_outputs},
        "mlp": lambda: {"in_features": math.prod(shape), "out_features": n_outputs},
        "cnn": lambda: {"in_channels": shape[0], "n_classes": n_outputs},
        "cnn3d": lambda: {"in_channels": shape[0], "n_classes": n_outputs, "input_size": shape[1:]},
        "unet": lambda: {"in_channels": shape[0], "n_classes": n_outputs},
        "rnn": lambda: {"input_size": shape[1], "n_classes": n_outputs},
        "transformer": lambda: {"input_size": shape[1], "n_classes": n_outputs, "max_len": max(512, shape[0])},
    }[family]()
    names = {f.name for f in fields(fam.config)}
    unknown = set(overrides) - names
    if unknown:
        raise BadOptionError(f"model family {family!r} has no option(s) {sorted(unknown)}; options are {sorted(names)}")
    return fam.config(**{**derived, **overrides})


def build_model(family: str, config: Any) -> nn.Module:
    """The family's module from its config (a dataclass or a dict, as stored in a checkpoint)."""
    fam = get_family(family)
    if isinstance(config, dict):
        names = {f.name for f in fields(fam.config)}
        unknown = set(config) - names
        if unknown:
            raise BadOptionError(f"config for {family!r} has unknown fields {sorted(unknown)}")
        config = fam.config(**config)
    return fam.build(config)


def describe_models() -> str:
    """One line per family: name, default dataset, what it is."""
    width = max(len(n) for n in FAMILIES)
    return "\n".join(f"{f.name:<{width}}  {f.description} (default data: {f.default_dataset})" for f in FAMILIES.values())


def config_dict(config: Any) -> dict[str, Any]:
    return asdict(config)
