"""Small versions of the models users bring as they come (issue 8): a
segmentation model returning a dict, a detection model returning a list of
dicts whose sizes depend on the data (through a custom operator), a BERT-style
encoder from `transformers` returning a ModelOutput, and a model with an
optional input, a non-tensor argument and a named-tuple output. Shared by
tests/test_real_world.py and tests/test_examples.py (the native app)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional

import torch
from torch import nn

import torchport

OPS_LIBRARY = Path(torchport.__file__).parent / "testing" / "libtp_test_ops.so"


class Segmenter(nn.Module):
    """torchvision-style segmentation: {"out": [B, K, H, W], "aux": [B, K, H, W]}."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))
        self.head = nn.Conv2d(8, classes, 1)
        self.aux = nn.Conv2d(8, classes, 1)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        size = image.shape[-2:]
        features = self.backbone(image)  # [B, 8, H/2, W/2]
        out = nn.functional.interpolate(self.head(features), size=size, mode="bilinear", align_corners=False)
        aux = nn.functional.interpolate(self.aux(features), size=size, mode="bilinear", align_corners=False)
        return {"out": out, "aux": aux}


class Detector(nn.Module):
    """Detection-style: one dict per image of the kept boxes, scores and labels;
    how many are kept depends on the pixels (tp_test::keep_above, nms-like)."""

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold
        self.features = nn.Conv2d(3, 8, 3, padding=1)
        self.score = nn.Conv2d(8, 1, 1)
        self.box = nn.Conv2d(8, 4, 1)
        self.label = nn.Conv2d(8, 5, 1)

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        f = torch.relu(self.features(images))                 # [B, 8, H, W]
        scores = torch.sigmoid(self.score(f)).flatten(1)       # [B, H*W]
        boxes = self.box(f).flatten(2).transpose(1, 2)         # [B, H*W, 4]
        labels = self.label(f).flatten(2).argmax(1)            # [B, H*W]
        detections: list[dict[str, torch.Tensor]] = []
        for i in range(images.shape[0]):
            keep = torch.ops.tp_test.keep_above(scores[i], self.threshold)  # [N], N depends on the data
            detections.append({"boxes": boxes[i][keep], "scores": scores[i][keep], "labels": labels[i][keep]})
        return detections


class Gated(NamedTuple):
    value: torch.Tensor
    gate: torch.Tensor


class OptionalMask(nn.Module):
    """timm-style optional argument (attn_mask: Optional[Tensor]) and a
    non-tensor one; returns a named tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, scale: float = 1.0) -> Gated:
        y = self.proj(x) * scale  # [B, T, 6]
        if mask is not None:
            y = y.masked_fill(mask.unsqueeze(-1) == 0, 0.0)
        return Gated(y, torch.sigmoid(y.sum(-1)))


def bert(max_positions: int = 16):
    """A BERT encoder from a tiny config with random weights (no download)."""
    import transformers

    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=max_positions)
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def bert_inputs(batch: int, seq: int, pad: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(batch * 100 + seq)
    ids = torch.randint(0, 50, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    if pad:
        mask[0, seq - pad:] = 0
    return {"input_ids": ids, "attention_mask": mask}


SEQ_DIMS = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}
IMAGE_DIMS = {"image": {0: "batch", 2: "height", 3: "width"}}


def gpt2():
    """A GPT-2 decoder with its LM head; use_cache=False leaves past_key_values out of the outputs."""
    import transformers

    config = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=16, use_cache=False,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).eval()


def t5():
    """A T5 encoder-decoder (relative positions: no length bound)."""
    import transformers

    config = transformers.T5Config(vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                                   use_cache=False, decoder_start_token_id=0)
    torch.manual_seed(0)
    return transformers.T5Model(config).eval()
