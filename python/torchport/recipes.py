"""How each family trains on each registered dataset by default: the one place that knows it.

A recipe fills the training settings a caller left unset (``None`` in ``TrainConfig``);
anything given explicitly (``--epochs``, ``--lr``...) wins. Data without a recipe (a
CSV file, an image folder, an unusual pairing) gets ``GENERIC``. Each recipe is chosen
so that the plain command converges: ``torchport train linear`` reproduces the line of
"Deep Learning with PyTorch" (tests/test_recipes.py), and ``benchmarks/train_zoo.py``
trains every family with these recipes and nothing else.

    >>> from torchport.recipes import recipe_for
    >>> recipe_for("linear", "thermometer").settings["epochs"]
    300
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Recipe:
    #: TrainConfig fields: epochs, batch_size, lr, optimizer, schedule, weight_decay, patience
    settings: dict[str, Any]
    #: model config fields (``--set``)
    model_options: dict[str, Any] = field(default_factory=dict)
    #: the validation metric the benchmark expects at least (None: checked otherwise)
    floor: Optional[float] = None


#: what a field takes when neither the caller nor a recipe sets it
GENERIC = Recipe({"epochs": 20, "batch_size": 64, "lr": 3e-3, "optimizer": "adamw", "schedule": "onecycle",
                  "weight_decay": 1e-4, "patience": None})

RECIPES: dict[tuple[str, str], Recipe] = {
    # 11 points, full batch, standardised input and target: Adam finds the least-squares line.
    ("linear", "thermometer"): Recipe({"epochs": 300, "batch_size": 16, "lr": 0.05, "optimizer": "adam",
                                       "schedule": "cosine", "weight_decay": 0.0}),
    ("mlp", "wine"): Recipe({"epochs": 40, "batch_size": 32, "lr": 3e-3}, floor=0.95),
    ("cnn", "digits"): Recipe({"epochs": 12, "batch_size": 64, "lr": 3e-3}, floor=0.97),
    ("cnn3d", "nodules"): Recipe({"epochs": 6, "batch_size": 16, "lr": 2e-3}, floor=0.95),
    ("unet", "shapes"): Recipe({"epochs": 8, "batch_size": 16, "lr": 3e-3}, floor=0.90),
    ("rnn", "signals"): Recipe({"epochs": 20, "batch_size": 32, "lr": 3e-3}, {"cell": "lstm"}, floor=0.95),
    ("transformer", "signals"): Recipe({"epochs": 30, "batch_size": 32, "lr": 3e-3}, floor=0.95),
}


def recipe_for(family: str, dataset: str) -> Recipe:
    """The recipe for ``family`` on the registered ``dataset``, with GENERIC filling the fields it leaves out."""
    r = RECIPES.get((family, dataset))
    if r is None:
        return GENERIC
    return Recipe({**GENERIC.settings, **r.settings}, dict(r.model_options), r.floor)


__all__ = ["GENERIC", "RECIPES", "Recipe", "recipe_for"]
