"""The user's own CSV: categorical columns (detected or declared) and string labels,
a vocabulary learnt on the training split, and an artifact whose manifest records
every input column and the label names as typed fields the C++ runtime parses."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import torchport
from conftest import run_cli
from torchport.checkpoint import export_checkpoint, load_checkpoint
from torchport.data import CSVDataset, Feature, encode_rows
from torchport.errors import BadArtifactError, DataError
from torchport.manifest import FeatureSpec, Manifest, TensorSpec
from torchport.train import TrainConfig, train

QUIET = TrainConfig(epochs=3, batch_size=16, progress=False, tensorboard=False, plots=False, device="cpu")
CITIES = ["lyon", "paris", "nice"]


def weather_csv(path, n=90, extra_city_row=False):
    """Temperature and city -> a string label; one city only in the last row when asked."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        city = CITIES[i % 3]
        temp = float(torch.randn(1, generator=g)) * 8 + 15
        label = "hot" if temp + (5 if city == "nice" else 0) > 18 else "cold"
        rows.append(f"{temp:.2f},{city},{i % 2},{label}")
    if extra_city_row:
        rows.append("20.0,brest,0,cold")
    path.write_text("temp,city,weekday,sky\n" + "\n".join(rows) + "\n")
    return path


def test_categorical_columns_are_detected_or_declared_and_labels_may_be_strings(tmp_path):
    ds = CSVDataset(weather_csv(tmp_path / "w.csv"), target="sky")
    assert ds.task == "classification" and ds.labels == ["cold", "hot"]
    assert [(f.name, f.type) for f in ds.features] == [("temp", "numeric"), ("city", "categorical"), ("weekday", "numeric")]
    assert ds.features[1].vocabulary == ["lyon", "nice", "paris"]
    assert ds.input_shape == (5,)  # temp, 3 cities one-hot, weekday
    declared = CSVDataset(tmp_path / "w.csv", target="sky", categorical=["weekday"])
    assert declared.features[2].type == "categorical" and declared.features[2].vocabulary == ["0", "1"]
    assert declared.input_shape == (6,)
    with pytest.raises(DataError, match=r"categorical column\(s\) \['town'\] not in the header"):
        CSVDataset(tmp_path / "w.csv", target="sky", categorical=["town"])


def test_the_vocabulary_comes_from_the_training_rows_and_unknown_values_are_zeros(tmp_path):
    ds = CSVDataset(weather_csv(tmp_path / "w.csv", n=30, extra_city_row=True), target="sky")
    last = len(ds) - 1
    ds.prepare([i for i in range(len(ds)) if i != last])  # 'brest' only outside the training rows
    assert ds.features[1].vocabulary == ["lyon", "nice", "paris"]
    assert ds.x[last, 1:4].tolist() == [0.0, 0.0, 0.0]  # unknown city: no one-hot bit
    assert encode_rows([Feature("c", "categorical", ["a", "b"])], [["b", "z"]]).tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_a_csv_with_categories_and_string_labels_trains_and_exports_typed_fields(tmp_path):
    ds = CSVDataset(weather_csv(tmp_path / "w.csv"), target="sky")
    r = train("mlp", ds, out=tmp_path / "run", config=QUIET)
    features = load_checkpoint(r.checkpoint)["dataset"]["features"]
    assert [f["name"] for f in features] == ["temp", "city", "weekday"]
    artifact = export_checkpoint(r.checkpoint, tmp_path / "sky.pt", postprocess="softmax")
    m = torchport.read_manifest(artifact)
    assert m.labels == ["cold", "hot"]
    # The training machine's folders stay out of the artifact: the CSV by its name only.
    assert str(tmp_path) not in m.to_json(), m.to_json()
    assert "CSV file w.csv, target column 'sky'" in m.metadata["preprocessing"]["input"]
    assert m.features == [FeatureSpec("temp"), FeatureSpec("city", "categorical", ("lyon", "nice", "paris")),
                          FeatureSpec("weekday")]
    native = torchport._native.Manifest.from_json(m.to_json())  # the runtime's own typed fields
    assert native.labels == ["cold", "hot"] and [f.width for f in native.features] == [1, 3, 1]
    (probs,) = torchport.NativeModel(artifact).run(ds.x[:4])
    assert probs.shape == (4, 2)


def test_the_runtime_refuses_features_that_do_not_fit_the_input(tmp_path):
    base = Manifest(name="m", inputs=[TensorSpec("features", "float32", ("batch", 4))],
                    outputs=[TensorSpec("logits", "float32", ("batch", 2))], created="2026-01-01T00:00:00Z")
    ok = replace(base, features=[FeatureSpec("a"), FeatureSpec("c", "categorical", ("x", "y", "z"))], labels=["n", "p"])
    assert ok.validated().features[1].vocabulary == ["x", "y", "z"]
    cases = {
        "describes 1 columns of 1 floats in all; expected one input of shape [batch, 1]": [FeatureSpec("a")],
        "type must be \"numeric\" or \"categorical\"": [FeatureSpec("a", "text"), FeatureSpec("b")],
        "repeats the feature name": [FeatureSpec("a")] * 4,
        "vocabulary: is empty": [FeatureSpec("a"), FeatureSpec("c", "categorical", ())],
        "repeats \"x\"": [FeatureSpec("a"), FeatureSpec("c", "categorical", ("x", "x", "y"))],
    }
    for message, features in cases.items():
        with pytest.raises(BadArtifactError, match=message.replace("[", r"\[").replace("]", r"\]")):
            replace(base, features=features).validated()
    with pytest.raises(BadArtifactError, match=r"field 'labels'\[1\]: repeats"):
        replace(base, labels=["a", "a"]).validated()


def test_the_command_line_takes_a_csv_with_categories(tmp_path):
    path = weather_csv(tmp_path / "w.csv")
    proc = run_cli("train", "mlp", "--csv", str(path), "--target", "sky", "--categorical", "weekday", "--epochs", "2",
                   "--out", str(tmp_path / "run"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(tmp_path / "run")["dataset"]["input_shape"] == [6]
    proc = run_cli("export", str(tmp_path / "run"), "--out", str(tmp_path / "sky.pt"), "--no-verify")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("inspect", str(tmp_path / "sky.pt"))
    assert 'labels: ["cold", "hot"]' in proc.stdout
    assert 'city             categorical one-hot over ["lyon", "nice", "paris"]' in proc.stdout
    proc = run_cli("train", "mlp", "--data", "wine", "--categorical", "x", "--out", str(tmp_path / "r2"))
    assert proc.returncode == 2 and "--categorical goes with --csv" in proc.stderr


def test_readable_answers_name_the_labels_the_same_from_cpp_and_python(tmp_path):
    import json

    from conftest import run_binary

    ds = CSVDataset(weather_csv(tmp_path / "w.csv"), target="sky")
    r = train("mlp", ds, out=tmp_path / "run", config=QUIET)
    artifact = export_checkpoint(r.checkpoint, tmp_path / "sky.pt", postprocess="softmax")
    torch.save(ds.x[:4], tmp_path / "rows.pt")
    (probs,) = torchport.NativeModel(artifact).run(ds.x[:4])
    proc = run_binary("predict", str(artifact), "--input", str(tmp_path / "rows.pt"), "--output",
                      str(tmp_path / "a.json"), "--format", "json", "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    answers = json.loads((tmp_path / "a.json").read_text())["answers"]
    assert len(answers) == 4
    for row, p in zip(answers, probs):
        assert row["label"] == ["cold", "hot"][int(p.argmax())]
        assert [t["label"] for t in row["top"]] == [["cold", "hot"][i] for i in p.argsort(descending=True).tolist()]
        assert row["top"][0]["score"] == pytest.approx(float(p.max()), rel=1e-6)
        assert row["probabilities"] == pytest.approx(p.tolist(), rel=1e-6)
    proc = run_cli("run", str(artifact), "--input", str(tmp_path / "rows.pt"), "--output", str(tmp_path / "b.json"),
                   "--format", "json", "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b.json").read_bytes() == (tmp_path / "a.json").read_bytes()
    proc = run_binary("predict", str(artifact), "--input", str(tmp_path / "rows.pt"), "--output",
                      str(tmp_path / "a.csv"), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "probabilities_0,probabilities_1,label,top1_label,top1_score,top2_label,top2_score"
    assert len(lines) == 5 and lines[1].split(",")[2] == answers[0]["label"]
