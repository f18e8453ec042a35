"""VGG for ImageNet: torchvision's names, timm's names mapped, a forward pass. (One test:
building the 130M-parameter network takes seconds.)"""

from __future__ import annotations

import numpy as np

import kiln
from kiln import models
from kiln.models.weights import map_state_dict
from kiln.transfer import discriminative_groups, freeze


def test_vgg11_bn_names_mapping_and_forward() -> None:
    model = models.vgg11_bn(num_classes=4)
    keys = list(model.state_dict())
    assert len(keys) == 62 and keys[:3] == ["features.0.weight", "features.0.bias",
                                            "features.1.weight"]
    assert "features.25.weight" in keys and "features.26.running_var" in keys
    assert keys[-2:] == ["classifier.6.weight", "classifier.6.bias"]
    assert sum(p.numel() for p in model.parameters()) == 132_868_840 - 1000 * 4097 + 4 * 4097
    # timm's VGG: the first two fully connected layers are 7x7 and 1x1 convolutions
    fc1 = np.arange(16 * 512 * 49, dtype=np.float32).reshape(16, 512, 7, 7)
    renamed, style = map_state_dict(model, {
        "features.0.weight": model.features[0].weight.detach().numpy(),
        "pre_logits.fc1.weight": np.broadcast_to(fc1[:1], (4096, 512, 7, 7)),
        "head.fc.bias": np.zeros(4, np.float32)})
    assert style == "timm-vgg"
    assert renamed["classifier.0.weight"].shape == (4096, 25088)
    np.testing.assert_array_equal(renamed["classifier.0.weight"][0], fc1[0].reshape(-1))
    assert "classifier.6.bias" in renamed
    model.eval()
    with kiln.no_grad():
        out = model(kiln.tensor(np.zeros((1, 3, 32, 32), np.float32)))
    assert out.shape == (1, 4)
    freeze(model)
    groups = discriminative_groups(model, 1e-2)
    assert [g["name"] for g in groups] == ["classifier.6"]
