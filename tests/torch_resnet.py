"""A plain-PyTorch ResNet with torchvision's exact module names and structure, the oracle for
weitiao.models.resnet* (torchvision is not installed on the test machines).

Mirrors torchvision.models.resnet: BasicBlock (ResNet-18/34), Bottleneck v1.5 (stride on
the 3x3 convolution), stem conv1/bn1/relu/maxpool, layer1-4, avgpool, fc, and a
``downsample`` Sequential(conv 1x1, BatchNorm) wherever the shortcut changes shape. Only
torch is imported, so test modules import this after ``pytest.importorskip("torch")``.
"""
import torch
from torch import nn


def conv3x3(inp, out, stride=1):
    return nn.Conv2d(inp, out, 3, stride=stride, padding=1, bias=False)


def conv1x1(inp, out, stride=1):
    return nn.Conv2d(inp, out, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)  # v1.5: the stride sits here
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes=1000):
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet34(num_classes=1000):
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes)


def resnet50(num_classes=1000):
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


# --------------------------------------------------------------------------- kink masks
# Comparing training-mode gradients of a whole network against PyTorch has one trap that is
# not about accuracy: an activation input within rounding distance of a kink (0 for ReLU,
# 0 and 6 for ReLU6) can land on different sides in the two float32 implementations, and
# that single element then sends its gradient down a different branch. Through a
# training-mode BatchNorm over few positions (ResNet's layer4 at 64x64 has 8 per channel)
# one such flip moves whole gradient tensors by tens of percent, in PyTorch float32 versus
# float64 as much as in weitiao versus PyTorch. So the whole-network tests record which
# elements weitiao's activations passed, and the PyTorch reference backpropagates through
# those same elements. Its forward values stay PyTorch's own, and `MaskedClamp` checks that
# the masks disagree with PyTorch's own only where the input is at a kink up to rounding.


class _MaskFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lo, hi, mask):
        ctx.save_for_backward(mask)
        return torch.clamp(x, min=lo, max=hi)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None, None


class MaskedClamp(nn.Module):
    """clamp(x, lo, hi) whose backward passes the gradient where the next recorded mask is
    1. ``queue`` is a list of masks (NumPy arrays) consumed in call order. Every
    disagreement with PyTorch's own mask is counted in ``flips`` with its distance to the
    kink relative to max|x| in ``worst_flip``."""

    def __init__(self, queue, lo=0.0, hi=None):
        super().__init__()
        self.queue, self.lo, self.hi = queue, lo, hi
        self.flips, self.worst_flip = 0, 0.0

    def forward(self, x):
        mask = torch.from_numpy(self.queue.pop(0)).to(x.dtype)
        with torch.no_grad():
            own = x > self.lo
            dist = (x - self.lo).abs()
            if self.hi is not None:
                own &= x < self.hi
                dist = torch.minimum(dist, (x - self.hi).abs())
            bad = own != mask.bool()
            if bad.any():
                self.flips += int(bad.sum())
                self.worst_flip = max(self.worst_flip,
                                      float(dist[bad].max() / x.abs().max().clamp_min(1e-30)))
        return _MaskFn.apply(x, self.lo, self.hi, mask)


def record_masks(modules, lo=0.0, hi=None):
    """Wrap each module's ``forward`` (weitiao ReLU/ReLU6 instances) so that every call
    appends float32 mask (lo < y < hi) of its output to the returned list, in call order."""
    queue = []
    for m in modules:
        inner = m.forward

        def forward(x, inner=inner):
            y = inner(x)
            keep = y > lo
            if hi is not None:
                keep &= y < hi
            queue.append(keep.astype("float32"))
            return y

        m.forward = forward
    return queue


def use_masks(model, queue):
    """Replace every ReLU of this ResNet with one MaskedClamp reading ``queue``; weitiao's
    ReLUs fire in the same order (stem; per block: main path, then the block's output)."""
    clamp = MaskedClamp(queue)
    model.relu = clamp
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in layer:
            block.relu = clamp
    return clamp
