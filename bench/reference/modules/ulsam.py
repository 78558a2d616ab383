"""Independent PyTorch reference for ULSAM (ultra-lightweight subspace attention) and MobileNet-V1 + ULSAM.

Written from shared/spec/ulsam.md only (not from the paper's repository). Run this file directly to check the
golden values of shared/spec/goldens/ulsam.md (prints the max abs deviation per case) and the MobileNet-V1
parameter / multiply-add counts.
"""
import math
import os
import re
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class SubSpace(nn.Module):
    """One subspace of G channels: DW 1x1 (bias) -> BN -> ReLU -> maxpool 3/1/1 -> PW G->1 (bias) -> BN -> ReLU ->
    softmax over H*W -> F * (1 + A)."""

    def __init__(self, g_channels):
        super().__init__()
        self.conv_dws = nn.Conv2d(g_channels, g_channels, 1, groups=g_channels, bias=True)
        self.bn_dws = nn.BatchNorm2d(g_channels, eps=1e-5, momentum=0.9)
        self.conv_point = nn.Conv2d(g_channels, 1, 1, bias=True)
        self.bn_point = nn.BatchNorm2d(1, eps=1e-5, momentum=0.9)

    def attention(self, f):
        b, _, h, w = f.shape
        d = F.relu(self.bn_dws(self.conv_dws(f)))
        d = F.max_pool2d(d, 3, 1, 1)
        p = F.relu(self.bn_point(self.conv_point(d)))
        return torch.softmax(p.reshape(b, 1, h * w), dim=-1)

    def forward(self, f):
        b, _, h, w = f.shape
        a = self.attention(f).reshape(b, 1, h, w)
        return a * f + f


class Ulsam(nn.Module):
    def __init__(self, channels, subspaces=4):
        super().__init__()
        assert channels % subspaces == 0
        self.subspaces = nn.ModuleList([SubSpace(channels // subspaces) for _ in range(subspaces)])

    def forward(self, x):
        chunks = torch.chunk(x, len(self.subspaces), dim=1)
        return torch.cat([s(c) for s, c in zip(self.subspaces, chunks)], dim=1)


# ---------------------------------------------------------------- MobileNet-V1
# (output channels, stride) of the 13 depthwise-separable layers; layers 6..10 are the five 512->512 at 14x14.
MV1_LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


def conv_bn_relu(cin, cout, k, s, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def ds_layer(cin, cout, s):
    return nn.Sequential(nn.Conv2d(cin, cin, 3, s, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
                         nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class MobileNetV1(nn.Module):
    """placement: None, ("add", layer, g) or ("replace", layer, g). features[0] = stem, features[1 + i] = layer i,
    with the ULSAM module inserted (add) or substituted (replace) in the Sequential."""

    def __init__(self, num_classes=1000, width=1.0, placement=None, in_channels=3):
        super().__init__()
        c = lambda n: int(n * width)
        mods = [conv_bn_relu(in_channels, c(32), 3, 2)]
        cin = c(32)
        for i, (cout, s) in enumerate(MV1_LAYERS):
            cout = c(cout)
            if placement is not None and placement[0] == "replace" and placement[1] == i:
                assert cin == cout and s == 1
                mods.append(Ulsam(cout, placement[2]))
            else:
                mods.append(ds_layer(cin, cout, s))
            if placement is not None and placement[0] == "add" and placement[1] == i:
                mods.append(Ulsam(cout, placement[2]))
            cin = cout
        self.features = nn.Sequential(*mods)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.mean((2, 3)))


# ---------------------------------------------------------------- benchmark cases
def cases():
    torch.manual_seed(0)
    out = []
    for g, c, hw in [(4, 512, 14), (16, 1024, 7)]:
        m = Ulsam(c, g).eval()
        x = torch.randn(32, c, hw, hw)
        out.append(dict(block=f"ULSAM g={g}", size=f"B 32, C {c}, {hw}×{hw}", module=m, inputs=[x],
                        forward=lambda mod, inp: mod(inp[0])))
    return out


# ---------------------------------------------------------------- golden self-test
def _fill(shape, c0, a, f, g, p):
    n = math.prod(shape)
    v = [c0 + a * math.sin(f * j + g * j * j + p) for j in range(n)]
    return torch.tensor(v, dtype=torch.float64).to(torch.float32).reshape(shape)


def _golden_path():
    here = os.path.dirname(os.path.abspath(__file__))
    for p in [os.path.join(here, "../../../test/MLNet.Attention.Tests/Goldens/ulsam.md"), "/work/shared/spec/goldens/ulsam.md"]:
        if os.path.exists(p):
            return p
    sys.exit("golden file not found")


def _self_test():
    text = open(_golden_path()).read()
    fills = {}
    for m in re.finditer(r"^\|\s*(?:\d+\s*\|\s*)?`([^`]+)`\s*\|.*?\|\s*\[([\d,\s]+)\]\s*\|" + r"\s*([-\d.e]+)\s*\|" * 5 + r"\s*$",
                         text, re.M):
        fills[m.group(1)] = _fill([int(s) for s in m.group(2).split(",")], *[float(m.group(k)) for k in range(3, 8)])

    def build():
        stage = nn.Sequential(nn.Conv2d(5, 5, 3, 1, 1, groups=5, bias=False), nn.BatchNorm2d(5), nn.ReLU(),
                              nn.Conv2d(5, 12, 1, bias=False), nn.BatchNorm2d(12), nn.ReLU(), Ulsam(12, 3),
                              nn.Conv2d(12, 12, 3, 2, 1, groups=12, bias=False), nn.BatchNorm2d(12), nn.ReLU(),
                              nn.Conv2d(12, 10, 1, bias=False), nn.BatchNorm2d(10), nn.ReLU())
        state = stage.state_dict()
        for k in state:
            if k.endswith("num_batches_tracked"):
                continue
            state[k] = fills["stage." + k]
        stage.load_state_dict(state)
        return stage

    cases = re.split(r"^#### Case: ", text, flags=re.M)[1:]

    def check(case_text, quantity_prefix, t):
        block = case_text[case_text.index("- **" + quantity_prefix):]
        block = block.split("\n- **")[0]
        m = re.search(r"sum = `([-\d.e]+)`; sum of abs = `([-\d.e]+)`", block)
        dev = max(abs(t.double().sum().item() - float(m.group(1))) / max(1, abs(float(m.group(1)))),
                  abs(t.double().abs().sum().item() - float(m.group(2))) / abs(float(m.group(2))))
        worst = 0.0
        for sm in re.finditer(r"- `(\w+)(?:\[([^\]]+)\])?` = `\[([^\]]+)\]`", block):
            idx = sm.group(2)
            got = eval(f"t[{idx}]").reshape(-1) if idx else t.reshape(-1)
            exp = torch.tensor([float(v) for v in sm.group(3).split(",")], dtype=torch.float64)
            worst = max(worst, (got.double() - exp).abs().max().item())
        print(f"  {quantity_prefix[:40]:40s} max |slice - golden| = {worst:.2e}, sums rel dev = {dev:.2e}")
        return worst

    xs, xu = fills["x_stage"], fills["x_ulsam"]
    worst = 0.0
    with torch.no_grad():
        s = build().eval()
        print(cases[0].splitlines()[0])
        worst = max(worst, check(cases[0], "output", s[6](xu)))
        worst = max(worst, check(cases[0], "debug: subspace 0", s[6].subspaces[0].attention(xu[:, :4])))
        s = build().train()
        print(cases[1].splitlines()[0])
        worst = max(worst, check(cases[1], "output", s[6](xu)))
        worst = max(worst, check(cases[1], "subspace 0 bn_dws running_mean", s[6].subspaces[0].bn_dws.running_mean))
        worst = max(worst, check(cases[1], "subspace 0 bn_dws running_var", s[6].subspaces[0].bn_dws.running_var))
        worst = max(worst, check(cases[1], "subspace 0 bn_point running_mean", s[6].subspaces[0].bn_point.running_mean))
        s = build().eval()
        print(cases[2].splitlines()[0])
        worst = max(worst, check(cases[2], "stage output", s(xs)))
        worst = max(worst, check(cases[2], "debug: ULSAM output", s[:7](xs)))
        s = build().train()
        print(cases[3].splitlines()[0])
        worst = max(worst, check(cases[3], "stage output", s(xs)))
        worst = max(worst, check(cases[3], "ULSAM subspace 0 bn_dws running_mean", s[6].subspaces[0].bn_dws.running_mean))
    print(f"max abs deviation over all golden slices: {worst:.2e}")

    # MobileNet-V1 parameter counts and multiply-adds at 224x224 (convs + FC; ULSAM counted as 2*C*H*W).
    for width in (1.0, 0.75, 0.5):
        base = sum(p.numel() for p in MobileNetV1(1000, width).parameters())
        rep = sum(p.numel() for p in MobileNetV1(1000, width, ("replace", 6, 4)).parameters())
        add = sum(p.numel() for p in MobileNetV1(1000, width, ("add", 10, 4)).parameters())
        add12 = sum(p.numel() for p in MobileNetV1(1000, width, ("add", 12, 4)).parameters())
        print(f"MV1 {width}: params {base}, replace(6, g4) {rep}, add(10, g4) {add}, add(12, g4) {add12}")
    m = MobileNetV1(10, 1.0, ("add", 8, 4)).eval()
    print("MV1 smoke:", m(torch.randn(2, 3, 64, 64)).shape)


if __name__ == "__main__":
    torch.set_num_threads(1)
    _self_test()
