"""Issue 11's image-folder path, end to end: a folder of PNG pictures of any size, the
default training command, an artifact that takes uint8 [B, H, W, 3] RGB pictures and
resizes, scales and normalises them in its graph, and the same answers from
torchport-run, from a C++ application that hands the model its own decoded buffers
(examples/image_app), from `torchport run` in Python and from the eager model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import torchport
from conftest import run_binary, run_cli
from torchport.checkpoint import load_checkpoint, pipeline_from_checkpoint
from torchport.cli import run_artifact
from torchport.data import ImageFolder
from torchport.errors import BadArtifactError, DataError
from torchport.images import ImageFront, read_image

CLASSES = {"discs": (220, 40, 40), "squares": (40, 200, 40), "triangles": (40, 40, 220)}


def picture(kind: str, colour, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A shape of `colour` over a noisy grey background: uint8 [H, W, 3]."""
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx, r = height / 2, width / 2, min(height, width) / 3
    if kind == "discs":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    elif kind == "squares":
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    else:
        mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)
    image = rng.integers(90, 130, size=(height, width, 3)).astype(np.uint8)
    image[mask] = colour
    return image


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgfolder")
    rng = np.random.default_rng(0)
    files = []
    for kind, colour in CLASSES.items():
        (root / "pets" / kind).mkdir(parents=True)
        for i in range(4):
            h, w = int(rng.integers(12, 40)), int(rng.integers(12, 40))  # any size
            path = root / "pets" / kind / f"{i}.png"
            Image.fromarray(picture(kind, colour, h, w, rng)).save(path)
            files.append(path)
    # The plain command, shortened to one epoch: this test checks identity, not accuracy.
    proc = run_cli("train", "cnn", "--images", str(root / "pets"), "--out", str(root / "run"), "--epochs", "1",
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    artifact = root / "pets.pt"
    proc = run_cli("export", str(root / "run"), "--out", str(artifact), "--postprocess", "softmax")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, artifact, files


def test_the_artifact_takes_pictures_and_says_how_in_its_manifest(trained):
    root, artifact, _ = trained
    m = torchport.read_manifest(artifact)
    (spec,) = m.inputs
    assert spec.dtype == "uint8" and spec.shape == ("batch", "height", "width", 3)
    assert spec.image is not None and spec.image.size == (32, 32) and spec.image.resize == "bilinear"
    assert (spec.image.layout, spec.image.channels, spec.image.range) == ("HWC", "RGB", (0, 255))
    ckpt = load_checkpoint(root / "run")
    assert list(spec.image.mean) == pytest.approx(ckpt["normalization"]["mean"])
    assert m.labels == sorted(CLASSES)
    assert str(root) not in m.to_json()  # the folder by its name, not the training machine's path
    assert "image folder pets" in m.metadata["preprocessing"]["input"]
    info = json.loads(run_binary("info", str(artifact), check=True).stdout)
    assert info["inputs"][0]["image"]["resize"] == {"size": [32, 32], "method": "bilinear", "antialias": False,
                                                   "align_corners": False}


def test_training_saw_what_the_graph_computes(trained):
    root, _, files = trained
    ds = ImageFolder(root / "pets")
    i = ds.files.index(files[0])
    pixels = torch.from_numpy(np.asarray(Image.open(files[0]).convert("RGB")).copy())[None]  # [1, H, W, 3]
    assert torch.equal(read_image(files[0]), pixels)  # the runtime's decoder, lossless PNG
    assert torch.equal(ds.x[i : i + 1], ImageFront((32, 32))(pixels))


def test_png_files_give_identical_answers_in_cpp_python_and_the_cpp_api(trained, tmp_path):
    root, artifact, files = trained
    picked = files[::4]  # one per class, three sizes
    # (a) torchport-run, the file itself
    cli = []
    for f in picked:
        out = tmp_path / f"{f.parent.name}.json"
        proc = run_binary("predict", str(artifact), "--input", str(f), "--output", str(out), "--format", "json")
        assert proc.returncode == 0, proc.stderr
        cli.append(json.loads(out.read_text())["answers"])
    # (b) the C++ API: an application's own uint8 HWC buffers (examples/image_app)
    app = Path(torchport.__file__).parent / "testing" / "image_app"
    if not app.exists():
        pytest.skip("examples/image_app is built by a test build (make setup)")
    proc = subprocess.run([str(app), str(artifact), *map(str, picked)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    decoder = json.JSONDecoder()
    text, api = proc.stdout, []
    while text.strip():
        doc, end = decoder.raw_decode(text.lstrip())
        api.append(doc["answers"])
        text = text.lstrip()[end:]
    # (c) `torchport run` in Python, through the binding
    python = []
    for f in picked:
        out = tmp_path / f"{f.parent.name}.py.json"
        run_artifact(str(artifact), str(f), str(out), format="json")
        python.append(json.loads(out.read_text())["answers"])
    assert cli == api == python
    # (d) the eager model from the checkpoint, on the pictures PIL decodes
    model = pipeline_from_checkpoint(load_checkpoint(root / "run"), "softmax")
    for f, answers in zip(picked, cli):
        pixels = torch.from_numpy(np.asarray(Image.open(f).convert("RGB")).copy())[None]
        with torch.no_grad():
            eager = model(pixels)[0].tolist()
        assert answers[0]["probabilities"] == eager, f
        assert answers[0]["label"] in CLASSES


def _with_image(manifest: dict, **changes) -> str:
    m = json.loads(json.dumps(manifest))
    image = m["inputs"][0]["image"]
    for key, value in changes.items():
        if key == "method":
            image["resize"]["method"] = value
        elif key == "on_output":
            m["outputs"][0]["image"] = image
        elif key == "dtype":
            m["inputs"][0]["dtype"] = value
        else:
            image[key] = value
    return json.dumps(m)


@pytest.mark.parametrize("change, message", [
    ({"range": [0, 1]}, r"'range' must be \[0, 255\]"),
    ({"layout": "CHW"}, "'layout' must be \"HWC\""),
    ({"channels": "BGR"}, "'channels' must be \"RGB\""),
    ({"method": "nearest"}, "resize 'method' must be \"bilinear\""),
    ({"std": [0.2, 0.0, 0.2]}, "'std' must hold finite numbers above 0"),
    ({"mean": [0.5, 0.5]}, r"'mean' must be 3 numbers"),
    ({"dtype": "float32"}, r"describes uint8 \[batch, H, W, 3\] pictures, but the input is float32"),
    ({"on_output": True}, "field 'image' describes an input; outputs have none"),
])
def test_the_runtime_refuses_an_image_contract_it_cannot_honour(trained, change, message):
    _, artifact, _ = trained
    good = torchport.read_manifest(artifact).to_dict()
    assert torchport.Manifest.from_json(json.dumps(good)).inputs[0].image is not None  # the unchanged one loads
    with pytest.raises(BadArtifactError, match=message):
        torchport.Manifest.from_json(_with_image(good, **change))


def test_a_file_that_is_no_picture_is_refused_by_name(tmp_path):
    (tmp_path / "pets" / "cats").mkdir(parents=True)
    torch.save(torch.zeros(1, 4, 4, 3), tmp_path / "pets" / "cats" / "fake.png")
    with pytest.raises(DataError, match=r"image '.*fake.png' is not a PNG or JPEG picture"):
        ImageFolder(tmp_path / "pets")
    (tmp_path / "pets" / "cats" / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    with pytest.raises(DataError, match=r"image '.*fake.png' cannot be read: .*is not a readable PNG/JPEG image"):
        ImageFolder(tmp_path / "pets")
