"""torchport.data: every dataset's task, shapes and labels; normalisation from the
training split only; the user's CSV files and image folders, and their errors."""

from __future__ import annotations

import pytest
import torch

from torchport.data import (
    DATASETS,
    CSVDataset,
    ImageFolder,
    Nodules,
    Shapes,
    Signals,
    load_dataset,
    resolve_dataset,
    split_indices,
)
from torchport.errors import BadOptionError, DataError

SMALL = {"nodules": {"n": 8, "size": 16}, "shapes": {"n": 8, "size": 16}, "signals": {"n": 8, "length": 32}}
EXPECTED = {
    "digits": ("classification", (1, 8, 8), 10),
    "wine": ("classification", (13,), 3),
    "thermometer": ("regression", (1,), 1),
    "nodules": ("classification", (1, 16, 16, 16), 2),
    "shapes": ("segmentation", (1, 16, 16), 1),
    "signals": ("classification", (32, 1), 4),
}


@pytest.mark.parametrize("name", list(DATASETS))
def test_dataset_knows_its_task_shape_and_labels(name):
    ds = load_dataset(name, **SMALL.get(name, {}))
    task, shape, outputs = EXPECTED[name]
    assert (ds.task, ds.input_shape, ds.n_outputs) == (task, shape, outputs)
    x, y = ds[0]
    assert x.shape == shape and x.dtype == torch.float32
    if task == "classification":
        assert len(ds.labels) == outputs and y.dtype == torch.int64
        assert set(ds.y.tolist()) <= set(range(outputs))
    if task == "segmentation":
        assert y.shape == shape and set(y.unique().tolist()) <= {0.0, 1.0}


def test_thermometer_holds_the_books_readings():
    ds = load_dataset("thermometer")
    assert len(ds) == 11
    assert ds[3][0].item() == pytest.approx(81.9) and ds[3][1].item() == 28.0  # input t_u, target t_c


def test_synthetic_data_is_seeded():
    for cls, kw in ((Nodules, SMALL["nodules"]), (Shapes, SMALL["shapes"]), (Signals, SMALL["signals"])):
        a, b, c = cls(**kw, seed=1), cls(**kw, seed=1), cls(**kw, seed=2)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert not torch.equal(a.x, c.x)


def test_nodules_have_a_blob_only_when_labelled():
    ds = Nodules(n=8, size=16)
    peak = ds.x.amax(dim=(1, 2, 3, 4))  # (N,)
    assert ds.y.tolist() == [0, 1] * 4
    assert peak[ds.y == 1].min() > -700 and ds.x.mean() < -400  # CT-like units: lung is dark


def test_normalization_uses_the_training_split_only():
    ds = load_dataset("wine")
    train_idx, val_idx = split_indices(len(ds), 0.2, seed=0)
    norm = ds.normalization(train_idx)
    mean, std = norm.tensors()
    assert mean.shape == (13,) and norm.shape == [13]
    torch.testing.assert_close(mean, ds.x[train_idx].mean(0))
    torch.testing.assert_close(std, ds.x[train_idx].std(0))
    assert not torch.allclose(mean, ds.x.mean(0))
    img = load_dataset("digits").normalization(range(100))
    assert img.shape == [1, 1, 1] and len(img.mean) == 1
    seq = Signals(**SMALL["signals"]).normalization(range(4))
    assert seq.shape == [1, 1]


def test_split_is_seeded_and_disjoint():
    a, b = split_indices(100, 0.2, seed=3), split_indices(100, 0.2, seed=3)
    assert a == b and len(a[1]) == 20 and not set(a[0]) & set(a[1])
    assert split_indices(100, 0.2, seed=4) != a
    train, val = split_indices(11, 0.0, seed=0)
    assert train == val and len(train) == 11  # nothing held out: validation on the training data


def write_csv(path, rows, header="a,b,label"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_csv_classification_and_regression(tmp_path):
    rows = [(i * 0.5, i % 3, 10 + i % 2) for i in range(20)]
    ds = CSVDataset(write_csv(tmp_path / "c.csv", rows), target="label")
    assert ds.task == "classification" and ds.labels == ["10", "11"] and ds.input_shape == (2,)
    assert ds.y.tolist() == [i % 2 for i in range(20)]
    reg = CSVDataset(write_csv(tmp_path / "r.csv", [(i, 2 * i, i * 0.37) for i in range(20)]), target="label")
    assert reg.task == "regression" and reg.y.shape == (20, 1) and reg.labels == []


def test_csv_errors_name_the_problem(tmp_path):
    path = write_csv(tmp_path / "c.csv", [(1, 2, 3), (4, 5, 6)])
    with pytest.raises(DataError, match=r"no column 'price'; columns are \['a', 'b', 'label'\]"):
        CSVDataset(path, target="price")
    bad = write_csv(tmp_path / "bad.csv", [(1, 2, 3), (4, 5, "cat")])
    with pytest.raises(DataError, match=r"line 3: target column 'label' is not numeric \('cat'\); a regression target"):
        CSVDataset(bad, target="label", task="regression")
    blank = write_csv(tmp_path / "blank.csv", [(1, 2, 3), ("", 5, 6)])
    with pytest.raises(DataError, match=r"line 3, column 'a': empty cell; expected a number"):
        CSVDataset(blank, target="label")
    with pytest.raises(DataError, match="does not exist"):
        CSVDataset(tmp_path / "nope.csv", target="label")
    with pytest.raises(BadOptionError, match="--csv needs --target"):
        resolve_dataset(csv=path)


def make_image_folder(root, n_per_class=4, size=(10, 12)):
    from PIL import Image

    for c, colour in (("cats", (200, 30, 30)), ("dogs", (30, 30, 200))):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            Image.new("RGB", size, tuple(v + i for v in colour)).save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_image_folder_reads_png_and_jpeg(tmp_path):
    ds = ImageFolder(make_image_folder(tmp_path / "pets"), size=(8, 8))
    assert ds.labels == ["cats", "dogs"] and len(ds) == 8 and ds.input_shape == (3, 8, 8)
    assert ds.y.tolist() == [0] * 4 + [1] * 4
    assert ds.x[0, 0].mean() > 150 / 255 and ds.x[-1, 2].mean() > 150 / 255  # red cats, blue dogs, scaled to 0..1
    assert ds.image_size == (8, 8)  # the exported model takes uint8 [B, H, W, 3] and resizes to this


def test_empty_image_folder_is_an_error(tmp_path):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        ImageFolder(tmp_path / "empty")


def test_unknown_dataset():
    with pytest.raises(BadOptionError, match="unknown dataset 'mnist'; choose from digits, wine"):
        load_dataset("mnist")
