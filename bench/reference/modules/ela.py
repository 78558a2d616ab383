"""Independent PyTorch reference for ELA (Efficient Local Attention) and the MobileNetV2 inverted-residual block
that carries it, written from shared/spec/ela.md (no code taken from the paper's repository).

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/reference/modules/ela.py   # golden self-test (goldens/ela.md)

`cases()` returns the same cases as bench/MLNet.Attention.Benchmarks/Modules/ElaCases.cs (same block/size strings).
"""
import math
import os
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {  # variant -> (kernel, conv groups as a function of C, GroupNorm groups)
    "T": (5, lambda c: c, 32),
    "B": (7, lambda c: c, 16),
    "S": (5, lambda c: c // 8, 16),
    "L": (7, lambda c: c // 8, 16),
}


class ELA(nn.Module):
    """y = x * sigmoid(GN(conv(mean_W x)))[..., None] * sigmoid(GN(conv(mean_H x)))[..., None, :]; one shared conv and GN."""

    def __init__(self, channels, variant="B", extra_residual=False):
        super().__init__()
        k, groups, norm_groups = PRESETS[variant]
        self.conv = nn.Conv1d(channels, channels, k, padding=k // 2, groups=groups(channels), bias=False)
        self.gn = nn.GroupNorm(norm_groups, channels, eps=1e-5)
        self.extra_residual = extra_residual

    def strip(self, z):
        return torch.sigmoid(self.gn(self.conv(z)))

    def forward(self, x):
        a_h = self.strip(x.mean(dim=3)).unsqueeze(3)  # [B, C, H, 1]: rows, mean over the width
        a_w = self.strip(x.mean(dim=2)).unsqueeze(2)  # [B, C, 1, W]: columns, mean over the height
        y = x * a_h * a_w
        return x + y if self.extra_residual else y


class InvertedResidual(nn.Module):
    """1x1 expand -> BN -> ReLU6 -> dw 3x3 (stride) -> BN -> ReLU6 -> [attention] -> 1x1 project -> BN (+ x)."""

    def __init__(self, inp, oup, stride, t, attention=None):
        super().__init__()
        e = inp * t
        layers = []
        if t != 1:
            layers += [nn.Conv2d(inp, e, 1, bias=False), nn.BatchNorm2d(e), nn.ReLU6()]
        layers += [nn.Conv2d(e, e, 3, stride, 1, groups=e, bias=False), nn.BatchNorm2d(e), nn.ReLU6()]
        if t != 1 and attention is not None:
            layers.append(attention(e))
        layers += [nn.Conv2d(e, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)
        self.identity = stride == 1 and inp == oup

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.identity else y



def make_divisible(v, divisor=8):
    """MobileNetV2's channel rounding: nearest multiple of divisor, at least divisor, never more than 10 % below."""
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


def _conv_bn_relu6(inp, oup, k, stride):
    return nn.Sequential(nn.Conv2d(inp, oup, k, stride, k // 2, bias=False), nn.BatchNorm2d(oup), nn.ReLU6())


class MobileNetV2(nn.Module):
    """The whole MobileNetV2 in the official ELA/CA flat layout (features.0 stem, features.1-17 blocks, conv final 1x1,
    classifier = Dropout + Linear), with ELA (or nothing) inside every t != 1 block. cifar_stem: stride 1 in the stem
    and the first 24-channel stage. State-dict names equal MLNet.Attention.Vision.MobileNetV2's."""

    TABLE = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes=1000, width=1.0, dropout=0.1, variant="L", in_channels=3, cifar_stem=False):
        super().__init__()
        divisor = 4 if width == 0.1 else 8
        channels = make_divisible(32 * width, divisor)
        layers = [_conv_bn_relu6(in_channels, channels, 3, 1 if cifar_stem else 2)]
        for stage, (t, c, n, s) in enumerate(self.TABLE):
            if cifar_stem and stage == 1:
                s = 1
            out = make_divisible(c * width, divisor)
            for i in range(n):
                attention = None if variant is None else (lambda e: ELA(e, variant))
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t, attention))
                channels = out
        self.feature_width = make_divisible(1280 * width, divisor) if width > 1.0 else 1280
        self.features = nn.Sequential(*layers)
        self.conv = _conv_bn_relu6(channels, self.feature_width, 1, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_width, num_classes))

    def forward_features(self, x):
        """The pooled vector before the classifier: [B, C, H, W] -> [B, feature_width]."""
        return self.conv(self.features(x)).mean(dim=(2, 3))

    def forward(self, x):
        return self.classifier(self.forward_features(x))

def cases():
    ela = ELA(64, "L")
    block = InvertedResidual(64, 64, 1, 6, lambda c: ELA(c, "L")).train()
    return [
        dict(block="ELA-L", size="B 32, C 64, 56×56", module=ela,
             inputs=[torch.randn(32, 64, 56, 56)], forward=lambda m, xs: m(xs[0])),
        dict(block="MobileNetV2 IR block + ELA-L", size="B 32, 64→64 ch, t 6 (E 384), 14×14, train", module=block,
             inputs=[torch.randn(32, 64, 14, 14)], forward=lambda m, xs: m(xs[0])),
    ]


# ---------------------------------------------------------------- golden self-test

def _golden_path():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "..", "test", "MLNet.Attention.Tests", "Goldens", "ela.md")


def _parse(path):
    fills, cases, current = {}, [], None
    row = re.compile(r"^\|\s*(?:\d+\s*\|\s*)?`([^`]+)`\s*\|.*?\|\s*\[([\d,\s]+)\]\s*\|" + r"\s*([-\d.e]+)\s*\|" * 5 + r"\s*$")
    total = re.compile(r"^- \*\*(.+?)\*\*: shape \[[\d, ]+\]; sum = `([-\d.e]+)`; sum of abs = `([-\d.e]+)`")
    piece = re.compile(r"^\s+- `(\w+)\[([^\]]+)\]` = `\[([^\]]+)\]`")
    for line in open(path, encoding="utf-8"):
        if m := row.match(line):
            fills[m[1]] = ([int(s) for s in m[2].split(",")], [float(m[i]) for i in range(3, 8)])
        elif line.startswith("#### Case:"):
            current = []
            cases.append((line[10:].strip(), current))
        elif (m := total.match(line)) and current is not None:
            current.append((m[1], float(m[2]), float(m[3]), []))
        elif (m := piece.match(line)) and current:
            current[-1][3].append((m[2], [float(v) for v in m[3].split(",")]))
    return fills, cases


def _fill(spec):
    shape, (c0, a, f, g, p) = spec
    n = math.prod(shape)
    return torch.tensor([c0 + a * math.sin(f * j + g * j * j + p) for j in range(n)], dtype=torch.float64).float().reshape(shape)


def _index(t, index):
    parts = []
    for s in (s.strip() for s in index.split(",")):
        if ":" in s:
            lo, hi = s.split(":")
            parts.append(slice(int(lo) if lo else None, int(hi) if hi else None))
        else:
            parts.append(int(s))
    return t[tuple(parts)].reshape(-1).double()


def _deviation(checks, quantity, t):
    name, total, total_abs, slices = next(c for c in checks if c[0].startswith(quantity))
    d = t.double()
    dev = max((_index(t, idx) - torch.tensor(v, dtype=torch.float64)).abs().max().item() for idx, v in slices) if slices else 0.0
    return max(dev, abs(d.sum().item() - total) / max(1.0, abs(total)), abs(d.abs().sum().item() - total_abs) / abs(total_abs))


def self_test():
    fills, cases = _parse(_golden_path())

    def load(module, prefix):
        state = module.state_dict()
        for key, spec in fills.items():
            if key.startswith(prefix):
                state[key[len(prefix):]].copy_(_fill(spec))

    worst = 0.0
    for index, (prefix, inp, oup, stride, t, x_name, train) in enumerate([
            ("blk0.", 8, 8, 1, 6, "x0", False), ("blk0.", 8, 8, 1, 6, "x0", True),
            ("blk1.", 16, 24, 2, 4, "x1", False), ("blk1.", 16, 24, 2, 4, "x1", True)]):
        block = InvertedResidual(inp, oup, stride, t, lambda c: ELA(c, "L"))
        load(block, prefix)
        block.train(train)
        seen = {}
        ela = block.conv[6]
        ela.register_forward_hook(lambda m, i, o: seen.update(inp=i[0].detach(), out=o.detach()))
        with torch.no_grad():
            y = block(_fill(fills[x_name]))
        title, checks = cases[index]
        devs = [_deviation(checks, "block output", y)]
        if train:
            devs += [_deviation(checks, "BN after depthwise: running_mean", block.conv[4].running_mean),
                     _deviation(checks, "BN after depthwise: running_var", block.conv[4].running_var)]
        else:
            devs += [_deviation(checks, "debug: ELA input", seen["inp"]), _deviation(checks, "debug: ELA output", seen["out"])]
        print(f"{title}: max deviation {max(devs):.2e}")
        worst = max(worst, *devs)
    att = ELA(48, "L")
    load(att, "att.")
    with torch.no_grad():
        y = att(_fill(fills["x_att"]))
    dev = _deviation(cases[4][1], "output", y)
    print(f"{cases[4][0]}: max deviation {dev:.2e}")
    worst = max(worst, dev)
    print(f"worst deviation over all cases (element |Δ| or relative sum error): {worst:.2e}")
    return worst


if __name__ == "__main__":
    assert self_test() < 1e-4
    import time
    torch.set_num_threads(2)
    for case in cases():
        with torch.no_grad():
            case["forward"](case["module"], case["inputs"])
            start = time.perf_counter()
            for _ in range(5):
                case["forward"](case["module"], case["inputs"])
        print(f'{case["block"]} [{case["size"]}]: forward {(time.perf_counter() - start) / 5 * 1000:.1f} ms')
