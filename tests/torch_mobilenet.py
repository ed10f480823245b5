"""A plain-PyTorch MobileNetV2 with torchvision's exact module names and structure, the oracle
for weitiao.models.mobilenet_v2 (torchvision is not installed on the test machines).

Mirrors torchvision.models.mobilenetv2 at width 1.0: ``features`` = Conv2dNormActivation
(conv 3x3/2, BatchNorm, ReLU6) to 32 channels, 17 InvertedResidual blocks (``conv`` =
[expand 1x1 Conv-BN-ReLU6 if t > 1], depthwise 3x3 Conv-BN-ReLU6, project 1x1 conv,
BatchNorm), Conv-BN-ReLU6 1x1 to 1280; adaptive average pool; ``classifier`` =
Dropout(0.2), Linear(1280, 1000). Only torch is imported, so test modules import this after
``pytest.importorskip("torch")``.
"""
import torch
from torch import nn

import torch_resnet as tr

# t (expand ratio), c (channels), n (repeats), s (first stride): torchvision's setting
SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
           [6, 160, 3, 2], [6, 320, 1, 1]]


class Conv2dNormActivation(nn.Sequential):
    def __init__(self, inp, out, kernel_size=3, stride=1, groups=1):
        super().__init__(nn.Conv2d(inp, out, kernel_size, stride, (kernel_size - 1) // 2,
                                   groups=groups, bias=False),
                         nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [Conv2dNormActivation(inp, hidden, kernel_size=1)] if expand_ratio != 1 else []
        layers += [Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.2):
        super().__init__()
        inp = 32
        features = [Conv2dNormActivation(3, inp, stride=2)]
        for t, c, n, s in SETTING:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        features.append(Conv2dNormActivation(inp, 1280, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def use_masks(model, queue):
    """Replace every ReLU6 with one MaskedClamp(0, 6) reading ``queue`` (see torch_resnet.py,
    "kink masks"); weitiao's ReLU6 fire in the same order, module order."""
    clamp = tr.MaskedClamp(queue, 0.0, 6.0)
    for m in model.modules():
        for name, child in m.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(m, name, clamp)
    return clamp
