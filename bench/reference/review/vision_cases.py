"""Expected values for VisionReferenceCasesTests.cs (independent review of the vision blocks).

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/reference/review/vision_cases.py > /tmp/cases.txt

Configurations the golden files do not cover (other ELA presets and channel counts, explicit k/G/NG, extra residual,
H = 1, odd and non-square maps, batch 1 and 3, float64, t = 1 and stride-2 inverted-residual blocks in train mode,
ResNet basic blocks with a downsample, ULSAM with g = 1 and g = 4, two train-mode forwards in a row, whole
MobileNetV2 + ELA-L / small ResNet + ELA-B / MobileNet-V1 + ULSAM networks). Modules come from ela.py and ulsam.py
(checked against goldens/ela.md and goldens/ulsam.md: max deviation < 5e-8) plus the reference layouts of
Xuwei86/ELA_Code (mbv2_ela72.py MBV2_ELA72, semantic/network/backbone/resnet.py BasicBlock: out = out + feat0(out)
after bn2) as described in shared/spec/ela.md §5.

Parameter fill ("fill rule", mirrored by VisionReferenceCasesTests.FillByRule): the state-dict keys without
num_batches_tracked are sorted ordinally; key number i gets v[j] = c0 + a*sin(f*j + g*j*j + p) (double, rounded once to
float32) with f = 0.1 + 0.013 i, g = 0.0003 (0 for tensors of more than 100,000 elements), p = 0.7 i and
  running_var: c0 1, a 0.3 | running_mean: c0 0, a 0.2 | 1-D weight (norm gamma): c0 1, a 0.2 |
  1-D bias: c0 0, a 0.1 | other weights: c0 0, a 1.5/sqrt(numel/shape[0]).
Inputs: c0 0.1, a 1.5, f 0.31, g 0.0007, p 0.4 over the row-major index.
"""
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "modules"))
from ela import ELA, InvertedResidual  # noqa: E402
from ulsam import Ulsam, MobileNetV1  # noqa: E402


def fill(shape, c0, a, f, g, p, dtype=torch.float32):
    n = math.prod(shape)
    j = torch.arange(n, dtype=torch.float64)
    return (c0 + a * torch.sin(f * j + g * j * j + p)).to(dtype).reshape(shape)


def fill_by_rule(module):
    sd = module.state_dict()
    keys = sorted(k for k in sd if not k.endswith("num_batches_tracked"))
    with torch.no_grad():
        for i, k in enumerate(keys):
            t = sd[k]
            if k.endswith("running_var"):
                c0, a = 1.0, 0.3
            elif k.endswith("running_mean"):
                c0, a = 0.0, 0.2
            elif t.dim() == 1 and k.endswith("weight"):
                c0, a = 1.0, 0.2
            elif t.dim() == 1 and k.endswith("bias"):
                c0, a = 0.0, 0.1
            else:
                c0, a = 0.0, 1.5 / math.sqrt(t.numel() // t.shape[0])
            g = 0.0003 if t.numel() <= 100_000 else 0.0
            t.copy_(fill(list(t.shape), c0, a, 0.1 + 0.013 * i, g, 0.7 * i, torch.float64))
    return keys


def x_of(shape, dtype=torch.float32):
    return fill(shape, 0.1, 1.5, 0.31, 0.0007, 0.4, dtype)


class ElaExplicit(ELA):
    def __init__(self, c, k, groups, ng, extra_residual=False):
        nn.Module.__init__(self)
        self.conv = nn.Conv1d(c, c, k, padding=k // 2, groups=groups, bias=False)
        self.gn = nn.GroupNorm(ng, c, eps=1e-5)
        self.extra_residual = extra_residual


class BasicBlock(nn.Module):
    """torchvision BasicBlock + ELA reference integration: out = bn2(conv2(...)); out = out + feat0(out); + shortcut; ReLU."""

    def __init__(self, inp, out, stride, attention):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or inp != out:
            self.downsample = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False), nn.BatchNorm2d(out))
        self.feat0 = attention(out) if attention else None

    def forward(self, x):
        o = torch.relu(self.bn1(self.conv1(x)))
        o = self.bn2(self.conv2(o))
        if self.feat0 is not None:
            o = self.feat0(o) + o
        idt = x if self.downsample is None else self.downsample(x)
        return torch.relu(o + idt)


class CifarResNet(nn.Module):
    def __init__(self, classes, blocks, base, attention):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        c = base
        for s in range(4):
            w = base << s
            layers = []
            for i in range(blocks[s]):
                layers.append(BasicBlock(c, w, 2 if i == 0 and s > 0 else 1, attention))
                c = w
            setattr(self, f"layer{s + 1}", nn.Sequential(*layers))
        self.fc = nn.Linear(8 * base, classes)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return self.fc(h.mean((2, 3)))


def make_divisible(v, d):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


class MBV2(nn.Module):
    """MBV2_ELA72 of mbv2_ela72.py (attention = ELA-L in every t != 1 block), width 1, configurable dropout."""

    def __init__(self, classes, dropout):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        c = make_divisible(32, 8)
        layers = [nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6())]
        for t, ch, n, s in cfg:
            o = make_divisible(ch, 8)
            for i in range(n):
                layers.append(InvertedResidual(c, o, s if i == 0 else 1, t, lambda e: ELA(e, "L")))
                c = o
        self.features = nn.Sequential(*layers)
        self.conv = nn.Sequential(nn.Conv2d(c, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, classes))

    def forward(self, x):
        return self.classifier(self.conv(self.features(x)).mean((2, 3)))


def fmt(v, digits):
    return f"{v:.{digits}g}"


def check(name, t, slices, digits=9):
    t = t.detach()
    d = t.double()
    parts = []
    for idx in slices:
        vals = eval(f"d[{idx}]").reshape(-1).tolist() if idx else d.reshape(-1).tolist()
        parts.append(f'("{idx}", new[] {{ {", ".join(fmt(v, digits) for v in vals)} }})')
    return (f'new("{name}", {fmt(d.sum().item(), 12)}, {fmt(d.abs().sum().item(), 12)}, '
            f'new() {{ {", ".join(parts)} }})')


def emit(case, checks):
    print(f'        ["{case}"] = new()\n        {{')
    for c in checks:
        print(f"            {c},")
    print("        },")


Y4 = ["0, 0, 0, :", "-1, -1, -1, :"]


def run(module, x, train, forwards=1):
    module.train(train)
    with torch.no_grad():
        for _ in range(forwards):
            y = module(x)
    return y


def main():
    torch.set_num_threads(1)
    orders = {}

    # ---- ELA, standalone
    m = ELA(32, "T"); fill_by_rule(m)
    y = run(m, x_of([1, 32, 5, 3]), False)
    emit("ela_T_1x32x5x3", [check("y", y, Y4 + ["0, 31, :, 2"])])

    m = ELA(48, "B", extra_residual=True); fill_by_rule(m)
    y = run(m, x_of([3, 48, 7, 4]), True)
    emit("ela_B_residual_3x48x7x4", [check("y", y, Y4 + ["1, 17, :, 0"])])

    m = ELA(16, "S"); fill_by_rule(m)
    y = run(m, x_of([2, 16, 1, 6]), False)
    emit("ela_S_2x16x1x6", [check("y", y, Y4)])

    m = ElaExplicit(64, 5, 1, 32); fill_by_rule(m)
    y = run(m, x_of([2, 64, 3, 3]), False)
    emit("ela_k5_g1_ng32_2x64x3x3", [check("y", y, Y4)])

    m = ELA(32, "L"); fill_by_rule(m); m.double()
    y = run(m, x_of([2, 32, 6, 5], torch.float64), False)
    emit("ela_L_float64_2x32x6x5", [check("y", y, Y4, 17)])
    orders["ela"] = [k for k, _ in m.named_parameters()]

    # ---- inverted-residual blocks (ELA-L inside unless said otherwise)
    m = InvertedResidual(16, 8, 1, 1, lambda e: ELA(e, "L")); fill_by_rule(m)
    y = run(m, x_of([2, 16, 5, 6]), False)
    emit("ir_t1_16to8_eval", [check("y", y, Y4)])

    m = InvertedResidual(8, 16, 2, 6, lambda e: ELA(e, "L")); fill_by_rule(m)
    y = run(m, x_of([1, 8, 7, 9]), True)
    emit("ir_8to16_s2_train_1x8x7x9", [check("y", y, Y4),
                                       check("conv.1.running_mean", m.conv[1].running_mean, [":4"]),
                                       check("conv.4.running_var", m.conv[4].running_var, [":4"]),
                                       check("conv.8.running_mean", m.conv[8].running_mean, [":4"]),
                                       check("conv.8.running_var", m.conv[8].running_var, [":4"])])
    orders["ir"] = [k for k, _ in m.named_parameters()]

    m = InvertedResidual(16, 16, 1, 2, lambda e: ELA(e, "B")); fill_by_rule(m)
    y = run(m, x_of([2, 16, 6, 5]), False)
    emit("ir_B_16to16_t2_eval", [check("y", y, Y4)])

    # ---- ResNet basic blocks with ELA as out + ELA(out)
    m = BasicBlock(16, 32, 2, lambda c: ELA(c, "B")); fill_by_rule(m)
    y = run(m, x_of([2, 16, 7, 5]), True)
    emit("bb_16to32_s2_B_train", [check("y", y, Y4),
                                  check("bn2.running_mean", m.bn2.running_mean, [":4"]),
                                  check("bn2.running_var", m.bn2.running_var, [":4"]),
                                  check("downsample.1.running_var", m.downsample[1].running_var, [":4"])])
    orders["bb"] = [k for k, _ in m.named_parameters()]

    m = BasicBlock(32, 32, 1, lambda c: ELA(c, "S")); fill_by_rule(m)
    y = run(m, x_of([1, 32, 4, 6]), False)
    emit("bb_32_S_eval", [check("y", y, Y4)])

    # ---- ULSAM
    m = Ulsam(6, 1); fill_by_rule(m)
    y = run(m, x_of([1, 6, 5, 7]), False)
    emit("ulsam_g1_eval", [check("y", y, Y4)])
    m = Ulsam(6, 1); fill_by_rule(m)
    y = run(m, x_of([1, 6, 5, 7]), True)
    emit("ulsam_g1_train", [check("y", y, Y4),
                            check("subspaces.0.bn_dws.running_mean", m.subspaces[0].bn_dws.running_mean, [""]),
                            check("subspaces.0.bn_dws.running_var", m.subspaces[0].bn_dws.running_var, [""]),
                            check("subspaces.0.bn_point.running_var", m.subspaces[0].bn_point.running_var, [""])])

    m = Ulsam(16, 4); fill_by_rule(m)
    x = x_of([3, 16, 4, 9])
    y = run(m, x, True, forwards=2)
    emit("ulsam_g4_two_train_forwards", [check("y", y, Y4 + ["2, 13, :, 8"]),
                                         check("subspaces.3.bn_dws.running_mean", m.subspaces[3].bn_dws.running_mean, [""]),
                                         check("subspaces.3.bn_dws.running_var", m.subspaces[3].bn_dws.running_var, [""]),
                                         check("subspaces.3.bn_point.running_mean", m.subspaces[3].bn_point.running_mean, [""]),
                                         check("subspaces.1.bn_point.running_var", m.subspaces[1].bn_point.running_var, [""])])
    y = run(m, x, False)
    emit("ulsam_g4_eval_after_training", [check("y", y, Y4)])
    orders["ulsam"] = [k for k, _ in m.named_parameters()]

    # ---- whole networks
    m = MBV2(10, 0.0); fill_by_rule(m)
    y = run(m, x_of([1, 3, 33, 29]), False)
    emit("mbv2_ela_L_eval_1x3x33x29", [check("y", y, ["0, :"])])
    # Train mode of a whole network on a small map is ill-conditioned (BatchNorm over 2-4 values per channel at the end:
    # float32 vs float64 of this very reference differ by 1e-2), so the train-mode network cases run in float64.
    m = MBV2(10, 0.0); fill_by_rule(m); m.double()
    y = run(m, x_of([2, 3, 33, 29], torch.float64), True)
    emit("mbv2_ela_L_train_float64_2x3x33x29", [check("y", y, ["0, :", "1, :"], 17),
                                                check("features.17.conv.4.running_mean", m.features[17].conv[4].running_mean, [":4"], 17),
                                                check("conv.1.running_var", m.conv[1].running_var, [":4"], 17)])

    m = CifarResNet(10, [1, 1, 1, 1], 16, lambda c: ELA(c, "B")); fill_by_rule(m)
    y = run(m, x_of([2, 3, 12, 10]), False)
    emit("resnet_base16_B_eval", [check("y", y, ["0, :", "1, :"])])

    m = MobileNetV1(10, 0.25, ("replace", 8, 4)); fill_by_rule(m)
    y = run(m, x_of([2, 3, 32, 32]), False)
    emit("mv1_025_ulsam_replace8_eval", [check("y", y, ["0, :", "1, :"])])
    m = MobileNetV1(10, 0.25, ("add", 12, 2)); fill_by_rule(m); m.double()
    y = run(m, x_of([2, 3, 32, 32], torch.float64), True)
    emit("mv1_025_ulsam_add12_train_float64", [check("y", y, ["0, :", "1, :"], 17),
                                               check("features.14.subspaces.1.bn_point.running_mean",
                                                     m.features[14].subspaces[1].bn_point.running_mean, [""], 17)])

    for k, v in orders.items():
        print(f'    // {k}: ' + ", ".join(f'"{n}"' for n in v))


if __name__ == "__main__":
    main()
