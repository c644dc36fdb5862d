"""Small-input (8–64 px) CIFAR-style networks as in the CRD/RepDistiller code base.

The PSKD paper's second table uses WRN-40-1/WRN-16-1 and VGG-13/VGG-8; the other depths are the
usual CRD student/teacher zoo. Layer names follow RepDistiller, so its state dicts load by name.
Differences from RepDistiller, on purpose: global pooling is adaptive (any input size works, not
only 32 px), the first conv takes ``in_chans`` bands, and ReLUs are not in-place so feature taps
see the values the next layer saw.
"""
from __future__ import annotations

import torch
from torch import nn

from compress.models.factory import register_model


def _init_weights(model: nn.Module) -> None:
    # RepDistiller initialisation: He (fan_out) for convs, BN at identity, zero linear bias.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


class BasicBlock(nn.Module):
    """Post-activation residual block (two 3×3 convs), 1×1 conv + BN shortcut when shapes change."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small inputs: 3×3 stem, three stages at strides 1/2/4, ``widths`` = stem + stages."""

    feature_layers = ("layer1", "layer2", "layer3")

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int, in_chans: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(widths[1], n, 1)
        self.layer2 = self._make_layer(widths[2], n, 2)
        self.layer3 = self._make_layer(widths[3], n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        _init_weights(self)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(self.inplanes, planes, stride)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class WideBasicBlock(nn.Module):
    """Pre-activation WRN block (BN-ReLU-conv ×2); 1×1 conv shortcut when widths differ."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv2(self.drop(self.relu2(self.bn2(self.conv1(act)))))
        # As in the WRN code: when widths change, the shortcut sees the activated input.
        return out + (x if self.convShortcut is None else self.convShortcut(act))


class NetworkBlock(nn.Module):
    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate)
            for i in range(n)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-k for small inputs: widths 16, 16k, 32k, 64k; depth = 6n+4."""

    feature_layers = ("block1", "block2", "block3")

    def __init__(self, depth: int, widen_factor: int, num_classes: int, in_chans: int = 3,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_chans, ch[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch[3], num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.relu(self.bn1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


VGG_CFG = {
    8: ((64,), (128,), (256,), (512,), (512,)),
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    19: ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


class CifarVGG(nn.Module):
    """VGG with BN for small inputs: five conv blocks, max-pool between the first four, one linear layer.

    As RepDistiller: the pool between block3 and block4 is applied only for inputs of 64 px and more,
    so a 32 px input reaches block4 at 4×4.
    """

    feature_layers = ("block1", "block2", "block3", "block4")

    def __init__(self, depth: int, num_classes: int, in_chans: int = 3) -> None:
        super().__init__()
        cfg = VGG_CFG[depth]
        prev = in_chans
        for i, widths in enumerate(cfg):
            layers: list[nn.Module] = []
            for v in widths:
                layers += [nn.Conv2d(prev, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                prev = v
            setattr(self, f"block{i}", nn.Sequential(*layers))
        for i in range(4):
            setattr(self, f"pool{i}", nn.MaxPool2d(2, 2))
        self.pool4 = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(prev, num_classes)
        _init_weights(self)
        for m in self.modules():  # RepDistiller's VGG uses N(0, 0.01) for the classifier
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = x.shape[-2] >= 64
        x = self.pool0(self.block0(x))
        x = self.pool1(self.block1(x))
        x = self.pool2(self.block2(x))
        x = self.block3(x)
        if big:
            x = self.pool3(x)
        x = self.pool4(self.block4(x))
        return self.classifier(torch.flatten(x, 1))


_RESNETS = {
    "cifar-resnet8": (8, (16, 16, 32, 64)),
    "cifar-resnet14": (14, (16, 16, 32, 64)),
    "cifar-resnet20": (20, (16, 16, 32, 64)),
    "cifar-resnet32": (32, (16, 16, 32, 64)),
    "cifar-resnet44": (44, (16, 16, 32, 64)),
    "cifar-resnet56": (56, (16, 16, 32, 64)),
    "cifar-resnet110": (110, (16, 16, 32, 64)),
    "cifar-resnet8x4": (8, (32, 64, 128, 256)),
    "cifar-resnet32x4": (32, (32, 64, 128, 256)),
}
_WRNS = {"cifar-wrn-16-1": (16, 1), "cifar-wrn-16-2": (16, 2), "cifar-wrn-40-1": (40, 1), "cifar-wrn-40-2": (40, 2)}
_VGGS = {"cifar-vgg8": 8, "cifar-vgg11": 11, "cifar-vgg13": 13, "cifar-vgg16": 16, "cifar-vgg19": 19}

_SMALL = dict(image_size=32, interpolation="bilinear", crop_pct=1.0)


def _register_all() -> None:
    for name, (depth, widths) in _RESNETS.items():
        register_model(name, **_SMALL)(
            lambda num_classes, in_chans=3, _d=depth, _w=widths: CifarResNet(_d, _w, num_classes, in_chans))
    for name, (depth, k) in _WRNS.items():
        register_model(name, **_SMALL)(
            lambda num_classes, in_chans=3, drop_rate=0.0, _d=depth, _k=k:
            WideResNet(_d, _k, num_classes, in_chans, drop_rate))
    for name, depth in _VGGS.items():
        register_model(name, **_SMALL)(
            lambda num_classes, in_chans=3, _d=depth: CifarVGG(_d, num_classes, in_chans))


_register_all()
