"""ResNet (He et al., CVPR 2016) with torchvision's module and key names, without torchvision.

The bottleneck ResNets here are the "v1.5" form torchvision ships (stride on the 3×3 conv of a
block, not on the first 1×1), so an ImageNet checkpoint written by torchvision
(``resnet101-63fe2227.pth``, ``resnet101-cd907fc2.pth``) loads key for key::

    conv1 (64, 3, 7, 7)  bn1  [relu, maxpool: no keys]
    layer{1..4}.{j}.{conv1, bn1, conv2, bn2, conv3, bn3}        j = 0 .. blocks-1
    layer{1..4}.0.downsample.{0: conv 1×1 (stride), 1: BatchNorm}
    fc                                                          (only with num_classes)

Every BatchNorm carries ``weight, bias, running_mean, running_var, num_batches_tracked``.
Widths per stage are 64·2^i (the 3×3 conv) and 256·2^i at the block output (expansion 4);
strides 4 (stem), 4, 8, 16, 32.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from refbench.core.errors import RefbenchError

EXPANSION = 4


@dataclass(frozen=True)
class ResNetConfig:
    """Bottleneck ResNet sizes.  Default: ResNet-101 (blocks 3, 4, 23, 3).

    Attributes:
        layers: bottleneck blocks per stage.
        base_width: channels of the stem and of the first stage's 3×3 convs (64).
        num_classes: size of the ``fc`` classifier; ``None`` builds no ``fc`` (feature extractor).
        zero_init_residual: start every block's last BN at gamma = 0 (torchvision option, off).
    """

    layers: tuple[int, ...] = (3, 4, 23, 3)
    base_width: int = 64
    num_classes: int | None = None
    zero_init_residual: bool = False

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Output channels of layer1..layer4 (256, 512, 1024, 2048 for the default widths)."""
        return tuple(self.base_width * 2 ** i * EXPANSION for i in range(len(self.layers)))


RESNET50 = ResNetConfig(layers=(3, 4, 6, 3))
RESNET101 = ResNetConfig(layers=(3, 4, 23, 3))


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """1×1 reduce -> 3×3 (stride) -> 1×1 expand (×4), BN after each, ReLU; identity or projected shortcut."""

    def __init__(self, c_in: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(c_in, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * EXPANSION)
        self.bn3 = nn.BatchNorm2d(width * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Bottleneck ResNet; ``forward`` returns the four stage maps (B, C_i, H/4/2^i, W/4/2^i)."""

    def __init__(self, config: ResNetConfig = RESNET101) -> None:
        super().__init__()
        self.config = config
        w = config.base_width
        self.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        c_in = w
        for i, blocks in enumerate(config.layers):
            width, stride = w * 2 ** i, 1 if i == 0 else 2
            down = None
            if stride != 1 or c_in != width * EXPANSION:
                down = nn.Sequential(_conv1x1(c_in, width * EXPANSION, stride), nn.BatchNorm2d(width * EXPANSION))
            layer = [Bottleneck(c_in, width, stride, down)]
            c_in = width * EXPANSION
            layer += [Bottleneck(c_in, width) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
        if config.num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(c_in, config.num_classes)
        self.init_weights()

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.config.layers))]

    def init_weights(self) -> None:
        """torchvision's init: Kaiming-normal (fan_out, ReLU) convs, BN 1/0, default Linear."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.config.zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    def stem(self, images: torch.Tensor) -> torch.Tensor:
        """conv 7×7/2 -> BN -> ReLU -> max-pool 3×3/2: (B, 3, H, W) -> (B, 64, H/4, W/4)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(images))))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(images)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


def load_pretrained_resnet(resnet: ResNet, path: str) -> list[str]:
    """Initialise ``resnet`` from a torchvision ImageNet checkpoint (bare state dict, or under
    ``state_dict``/``model``); ``fc.*`` is dropped when this ResNet has no classifier.

    Strict on every other key: a checkpoint of another depth raises RefbenchError naming the
    mismatch.  Returns notes.
    """
    from refbench.core.checkpoint import (CheckpointLayout, extract_state_dict, load_state_dict_checked,
                                             read_checkpoint)

    layout = CheckpointLayout(dicts={"model": ""}, ignore_suffixes=())
    state, notes = extract_state_dict(read_checkpoint(path), layout, "resnet", "", path)
    if resnet.config.num_classes is None:
        dropped = [k for k in state if k.startswith("fc.")]
        for k in dropped:
            del state[k]
        if dropped:
            notes.append(f"dropped the ImageNet classifier ({len(dropped)} fc tensors)")
    if not any(k.startswith("layer1.") for k in state):
        raise RefbenchError(f"{path}: no 'layer1.*' keys; this is not a torchvision ResNet checkpoint")
    depth = sum(resnet.config.layers) * 3 + 2
    notes += load_state_dict_checked(resnet, state, path, f"ResNet-{depth}")
    return notes
