"""Independent PyTorch reference for GAAM / DAAM (Gaussian / density adaptive attention), written from
shared/spec/gaam.md only. (B) = the paper's single-Gaussian-per-feature DAAM head (default), (A) = the
library's product-of-Gaussians GaussianBlock. Run as a script to check the golden values of
shared/spec/goldens/gaam_daam.md."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------- (B) DAAM
class DAAM(nn.Module):
    """One DAAM head: statistics over the layer axis, one Gaussian per feature, weights exp(-y^2 / (2c))."""

    def __init__(self, features, c=2.0, eps=1e-5, reference_time_pooling=True):
        super().__init__()
        self.c = nn.Parameter(torch.full((1, features), float(c)))
        self.mean_offset = nn.Parameter(torch.zeros(1, features))
        self.eps = eps
        self.reference_time_pooling = reference_time_pooling

    def weights(self, x):  # x [B, L, T, D] -> w [B, L, D]
        b, l, t, d = x.shape
        if self.reference_time_pooling:  # raw reinterpretation of memory, as the reference does
            y = x.reshape(b, l * d, t).mean(-1).reshape(b, l, d)
        else:
            y = x.mean(2)
        mean = y.mean(1, keepdim=True)
        var = ((y * y).mean(1, keepdim=True) - mean * mean).abs() + 1e-8
        z = (y - (mean + self.mean_offset)) / torch.sqrt(var + self.eps)
        return torch.exp(-(z * z) / (2 * self.c))

    def forward(self, x):
        return x * self.weights(x).unsqueeze(2)


class MultiHeadDAAM(nn.Module):
    """[B, L, D] -> [B, L, D]; head i owns encoder layers i*L/H .. (i+1)*L/H - 1."""

    def __init__(self, layers, features, heads=8, c=2.0, eps=1e-5):
        super().__init__()
        assert layers % heads == 0
        self.heads = heads
        self.gcts = nn.ModuleList([DAAM(features, c, eps) for _ in range(heads)])

    def forward(self, x):
        b, l, d = x.shape
        xs = x.view(b, self.heads, l // self.heads, 1, d)
        return torch.cat([g(xs[:, i]).mean(2) for i, g in enumerate(self.gcts)], 1)

    def weights(self, x):
        b, l, d = x.shape
        xs = x.view(b, self.heads, l // self.heads, 1, d)
        return torch.cat([g.weights(xs[:, i]) for i, g in enumerate(self.gcts)], 1)


class DAAMClassifier(nn.Module):
    """Paper pipeline head: MultiHeadDAAM -> [B, L, h, w] -> conv3x3(L->512) -> ReLU -> conv3x3(512->L) -> ReLU -> Linear."""

    def __init__(self, layers, features, classes, height, width, heads=8, hidden=512):
        super().__init__()
        self.shape = (layers, height, width)
        self.daam = MultiHeadDAAM(layers, features, heads)
        self.conv1 = nn.Conv2d(layers, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, layers, 3, padding=1)
        self.fc = nn.Linear(layers * features, classes)
        for m in (self.conv1, self.conv2, self.fc):
            nn.init.xavier_uniform_(m.weight)

    def forward(self, x):
        x = self.daam(x).reshape(x.shape[0], *self.shape)
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(x.flatten(1))


def importance_factor(density_map):
    lo, hi = density_map.min(), density_map.max()
    span = hi - lo
    return torch.where(span > 0, (density_map - lo) / torch.where(span > 0, span, torch.ones_like(span)),
                       torch.zeros_like(density_map))


# ------------------------------------------------------------------------------------------ (A) library
class GaussianHead(nn.Module):
    def __init__(self, norm_axis, gaussians, padding_value=None, eps=1e-8):
        super().__init__()
        self.norm_axis, self.padding_value, self.eps = norm_axis, padding_value, eps
        self.mean_offsets = nn.Parameter(torch.zeros(gaussians))
        self.c = nn.Parameter(torch.exp(torch.randn(gaussians)))

    def forward(self, x):
        a = self.norm_axis
        mask = None if self.padding_value is None else x != self.padding_value
        xm = x if mask is None else torch.where(mask, x, torch.zeros_like(x))
        mean = xm.mean(a, keepdim=True)
        std = torch.sqrt(xm.var(a, keepdim=True) + self.eps)
        p = None
        for i in range(self.c.shape[0]):
            z = (x - (mean + self.mean_offsets[i])) / std
            c2 = self.c[i] * self.c[i]
            g = torch.exp(-(z * z) / (2 * c2)) / torch.sqrt(2 * math.pi * c2)
            p = g if p is None else p * g
        w = p / p.sum(a, keepdim=True).clamp(min=self.eps)
        out = x * w if mask is None else torch.where(mask, x * w, x)
        return out, w


class GaussianMultiHead(nn.Module):
    def __init__(self, norm_axis, heads, gaussians, padding_value=None):
        super().__init__()
        self.norm_axis, self.heads = norm_axis, heads
        self.attention_heads = nn.ModuleList([GaussianHead(norm_axis, gaussians, padding_value) for _ in range(heads)])

    def forward(self, x):
        a, n = self.norm_axis, x.shape[self.norm_axis]
        chunk = n // self.heads
        outs, ws = [], []
        for i, h in enumerate(self.attention_heads):
            end = n if i == self.heads - 1 else (i + 1) * chunk
            o, w = h(x.narrow(a, i * chunk, end - i * chunk))
            outs.append(o)
            ws.append(w)
        return torch.cat(outs, a), torch.cat(ws, a)


class GaussianBlock(nn.Module):
    def __init__(self, norm_axes, heads, gaussians, padding_value=None):
        super().__init__()
        self.layers = nn.ModuleList([GaussianMultiHead(a, h, g, padding_value) for a, h, g in zip(norm_axes, heads, gaussians)])

    def forward(self, x, return_weights=False):
        ws = []
        for layer in self.layers:
            o, w = layer(x)
            x = o + x
            ws.append(w.detach())
        return (x, ws) if return_weights else x


# ------------------------------------------------------------------------------------------ benchmark
def cases():
    torch.manual_seed(0)
    daam = MultiHeadDAAM(13, 768, heads=13)
    block = GaussianBlock([2], [8], [4])
    clf = DAAMClassifier(24, 1024, 4, 32, 32, heads=8)
    return [
        dict(block="MultiHeadDAAM", size="B 32, layers 13, D 768, H 13", module=daam,
             inputs=[torch.randn(32, 13, 768)], forward=lambda m, i: m(i[0])),
        dict(block="GaussianBlock", size="B 32, T 128, D 256, axis 2, H 8, N 4", module=block,
             inputs=[torch.randn(32, 128, 256)], forward=lambda m, i: m(i[0])),
        dict(block="DaamClassifier", size="B 8, layers 24, D 1024 (32x32), H 8, 4 classes", module=clf,
             inputs=[torch.randn(8, 24, 1024)], forward=lambda m, i: m(i[0])),
    ]


# ------------------------------------------------------------------------------------------ golden self-test
def _fill(shape, c0, a, f, g, p):
    n = 1
    for s in shape:
        n *= s
    v = [c0 + a * math.sin(f * j + g * j * j + p) for j in range(n)]
    return torch.tensor(v, dtype=torch.float64).to(torch.float32).reshape(shape)


def _self_test():
    import os, re
    path = os.path.join(os.path.dirname(__file__), "../../../shared/spec/goldens/gaam_daam.md")
    if not os.path.exists(path):
        path = "/work/shared/spec/goldens/gaam_daam.md"
    text = open(path).read()
    fills = {}
    for m in re.finditer(r"^\|\s*(?:\d+\s*\|\s*)?`([^`]+)`\s*\|.*?\|\s*\[([\d,\s]+)\]\s*\|\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|\s*$", text, re.M):
        shape = [int(s) for s in m.group(2).split(",")]
        fills[m.group(1)] = _fill(shape, *[float(m.group(k)) for k in range(3, 8)])

    def load(module, prefix):
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(fills[prefix + name].reshape(p.shape))

    daam = MultiHeadDAAM(9, 7, heads=3); load(daam, "daam.")
    daam1 = DAAM(7); load(daam1, "daam1.")
    block = GaussianBlock([1, 2], [2, 3], [3, 2]); load(block, "block.")
    padblock = GaussianBlock([1], [2], [2], padding_value=-1.0); load(padblock, "padblock.")
    xp = fills["x_pad_raw"].clone().reshape(-1)
    xp[1::7] = -1.0
    xp = xp.reshape(2, 6, 5)
    with torch.no_grad():
        results = {
            "daam": daam(fills["x_daam"]),
            "daam_w0": daam.gcts[0].weights(fills["x_daam"].view(2, 3, 3, 1, 7)[:, 0]).unsqueeze(2),
            "daam1": daam1(fills["x_daam4"]),
            "daam1_w": daam1.weights(fills["x_daam4"]).unsqueeze(2).expand(2, 3, 3, 7),
        }
        y, ws = block(fills["x_block"], True)
        results.update(block=y, block_m0=ws[0], block_m1=ws[1])
        y, ws = padblock(xp, True)
        results.update(pad=y, pad_m=ws[0])
    expected = [  # (key, sum, sum of abs) from the golden file
        ("daam", 10.900571, 72.86578), ("daam_w0", 33.518206, 33.518206), ("daam1", -19.732644, 72.179843),
        ("daam1_w", 101.05354, 101.05354), ("block", 41.78452, 216.0052), ("block_m0", 38, 38),
        ("block_m1", 42, 42), ("pad", 3.1537923, 76.668754), ("pad_m", 20, 20)]
    for key, s, sa in expected:
        t = results[key].double()
        print(f"{key:9s} sum {t.sum().item():12.7f} (golden {s}) | sum|.| {t.abs().sum().item():12.7f} (golden {sa})")
    slices = [
        ("daam", (0, 0), [0.65546101, 0.97136199, 1.1205031, 1.0584811, 0.78156149, 0.31642222, -0.018841825]),
        ("daam", (-1, -1), [0.35897934, 0.88275617, 0.65492564, 0.17047307, -0.29882765, -0.82337111, -0.45094728]),
        ("daam1", (-1, -1, -1), [-0.56983232, 0.018553808, 0.53079957, 0.6168344, 0.19225071, -0.57074344, -1.2681609]),
        ("block", (-1, -1), [-0.51585847, 1.4702013, 2.6098008, 2.3138349, 2.0144639, 0.47719103, -0.57511485, -1.5617374, -1.6176307, -1.2887856]),
        ("pad", (0, slice(None), 0), [0.86863685, 0.06776806, 0.98273146, -2, 1.7912908, -1.3551645]),
        ("pad", (-1, slice(None), -1), [-0.78221953, 0.22430047, 1.8027692, -0.67273545, -0.81482035, 1.5575564]),
    ]
    worst = 0.0
    for key, idx, vals in slices:
        worst = max(worst, (results[key][idx].double() - torch.tensor(vals, dtype=torch.float64)).abs().max().item())
    print(f"max abs deviation over the checked slices: {worst:.3e}")


if __name__ == "__main__":
    _self_test()
