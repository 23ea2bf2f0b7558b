"""Raw CSV rows as a tabular model's input: columns matched by name against the
manifest's features and categories one-hot encoded by the C++ runtime's reader,
the same for torchport-run, `torchport run` and `verify --inputs`."""

from __future__ import annotations

import json
import re

import pytest
import torch

import torchport
from conftest import run_binary, run_cli
from test_own_data import weather_csv
from torchport.data import encode_rows
from torchport.native import read_tensor_file

# Columns in another order than training's, the label column still there (ignored),
# a city outside the vocabulary ('brest': all zeros), quoted cells and \r\n endings.
RAW_ROWS = ('sky,weekday,city,temp\r\n'
            'cold,0,lyon,3.5\r\n'
            'hot,1,"nice",21\r\n'
            '\r\n'
            ',1,paris, -4.25e1\r\n'
            'cold,0,brest,+12\r\n')
RAW = [(3.5, "lyon", 0.0), (21.0, "nice", 1.0), (-42.5, "paris", 1.0), (12.0, "brest", 0.0)]


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    """A classifier trained with the command line on a CSV with a category and string labels."""
    tmp = tmp_path_factory.mktemp("sky")
    data = weather_csv(tmp / "weather.csv")
    proc = run_cli("train", "mlp", "--csv", str(data), "--target", "sky", "--epochs", "3",
                   "--out", str(tmp / "run"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("export", str(tmp / "run"), "--out", str(tmp / "sky.pt"), "--postprocess", "softmax")
    assert proc.returncode == 0, proc.stderr
    return tmp / "sky.pt"


def test_raw_csv_rows_give_labelled_answers_the_same_from_cpp_and_python(sky, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text(RAW_ROWS, newline="")
    proc = run_binary("predict", str(sky), "--input", str(rows), "--output", str(tmp_path / "a.json"),
                      "--format", "json")
    assert proc.returncode == 0, proc.stderr
    answers = json.loads((tmp_path / "a.json").read_text())["answers"]
    # Python's own encoding of the same rows (the training one), run by the runtime.
    m = torchport.read_manifest(sky)
    assert [f.name for f in m.features] == ["temp", "city", "weekday"]
    x = encode_rows(m.features, [[r[0] for r in RAW], [r[1] for r in RAW], [r[2] for r in RAW]])
    assert x[3, 1:4].tolist() == [0.0, 0.0, 0.0]  # 'brest' is outside the vocabulary
    (expected,) = read_tensor_file(rows, sky)
    assert torch.equal(expected, x)  # the C++ reader encodes as training does
    (probs,) = torchport.NativeModel(sky).run(x)
    assert [a["label"] for a in answers] == [m.labels[i] for i in probs.argmax(1).tolist()]
    assert [p for a in answers for p in a["probabilities"]] == pytest.approx(probs.flatten().tolist(), rel=1e-6)
    proc = run_cli("run", str(sky), "--input", str(rows), "--output", str(tmp_path / "b.json"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b.json").read_bytes() == (tmp_path / "a.json").read_bytes()
    proc = run_cli("verify", str(sky), "--inputs", str(rows), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("text", "message"), [
    ("temp,weekday\n1,0\n", r"has no column 'city'; the model's features are 'temp', 'city', 'weekday'"),
    ("temp,city,weekday\n1,lyon,0\nnan,lyon,0\n", r"line 3, column 'temp': holds 'nan'; expected a finite number"),
    ("temp,city,weekday\n1,lyon,1e999\n", r"line 2, column 'weekday': holds '1e999'; expected a finite number"),
    ("temp,city,weekday\n1,lyon,0x10\n", r"line 2, column 'weekday': holds '0x10'; expected a number"),
    ("temp,city,weekday\n1,,0\n", r"line 2, column 'city' is empty"),
    ("temp,city,weekday\n1,lyon\n", r"line 2 has 2 cells, the header has 3"),
    ("temp,city,city\n1,lyon,0\n", r"repeats the column 'city'"),
    ('temp,city,weekday\n1,"lyon,0\n', r"line 2 opens a quoted cell that is never closed"),
    ("temp,city,weekday\n", r"has a header but no data rows"),
])
def test_bad_csv_rows_are_refused_naming_line_and_column(sky, tmp_path, text, message):
    rows = tmp_path / "bad.csv"
    rows.write_text(text)
    proc = run_binary("predict", str(sky), "--input", str(rows), "--output", str(tmp_path / "out.pt"))
    assert proc.returncode == 4, proc.stderr  # BadInput
    assert "bad.csv" in proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "out.pt").exists()


def test_csv_rows_need_a_model_with_features(tmp_path):
    model = torch.nn.Linear(2, 1)
    artifact = torchport.export(model, (torch.zeros(1, 2),), tmp_path / "lin.pt")
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1,2\n")
    proc = run_binary("predict", str(artifact), "--input", str(rows), "--output", str(tmp_path / "out.pt"))
    assert proc.returncode == 4 and "rows.csv" in proc.stderr, proc.stderr
