#!/usr/bin/env python3
"""Independent PyTorch implementation of CRIB (Yang et al., arXiv 2509.23494) for the module benchmark.

Written from shared/spec/crib.md and shared/spec/goldens/crib.md only (not from the paper's repository).
Parameter names equal the reference state-dict keys listed in the golden file, so the golden fill can be loaded
by name. ``cases()`` returns the benchmark cases paired with bench/MLNet.Attention.Benchmarks/Modules/CribCases.cs;
running this file directly checks the implementation against the golden values and prints the max deviations.

Run with OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/reference/modules/crib.py
"""

import math
import os
import re
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class WeightNormConv2d(nn.Module):
    """Conv2d with explicit weight norm: w = g * v / ||v|| (norm per output channel), causal along the width."""

    def __init__(self, cin, cout, kernel, dilation):
        super().__init__()
        conv = nn.Conv2d(cin, cout, (1, kernel))
        self.bias = nn.Parameter(conv.bias.detach().clone())
        v = conv.weight.detach().clone()
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).view(cout, 1, 1, 1))
        self.weight_v = nn.Parameter(v)
        self.pad = (kernel - 1) * dilation
        self.dilation = dilation

    def forward(self, x):
        norm = self.weight_v.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
        w = self.weight_g * self.weight_v / norm
        x = F.pad(x, (self.pad, 0))  # equal to symmetric padding followed by the chomp of the last pad columns
        return F.conv2d(x, w, self.bias, dilation=(1, self.dilation))


class TemporalBlock(nn.Module):
    def __init__(self, cin, cout, kernel, dilation, dropout):
        super().__init__()
        self.conv1 = WeightNormConv2d(cin, cout, kernel, dilation)
        self.conv2 = WeightNormConv2d(cout, cout, kernel, dilation)
        self.downsample = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        out = self.drop(F.relu(self.conv1(x)))
        out = self.drop(F.relu(self.conv2(out)))
        res = x if self.downsample is None else self.downsample(x)
        return out + res


class TCN(nn.Module):
    def __init__(self, cin, channels, kernel, dropout):
        super().__init__()
        blocks = []
        for i, c in enumerate(channels):
            blocks.append(TemporalBlock(cin if i == 0 else channels[i - 1], c, kernel, 2 ** i, dropout))
        self.net = nn.Sequential(*blocks)

    def forward(self, x):
        return self.net(x)


def sinusoid_table(rows, width):
    pe = torch.zeros(rows, width)
    pos = torch.arange(0, rows).float().unsqueeze(1)
    div = (torch.arange(0, width, 2).float() * -(math.log(10000.0) / width)).exp()
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe.unsqueeze(0)


class PosTable(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.register_buffer("pe", sinusoid_table(5000, width))


class ValueEmbedding(nn.Module):  # dead module, kept for the state-dict layout
    def __init__(self, d):
        super().__init__()
        self.value_embedding = nn.Linear(d, d)


class QkvAttention(nn.Module):
    """Q = K = V = query_projection(x); heads merged with the reference's extra permute."""

    def __init__(self, d, heads, dropout):
        super().__init__()
        self.query_projection = nn.Linear(d, d)
        self.key_projection = nn.Linear(d, d)
        self.value_projection = nn.Linear(d, d)
        self.out_projection = nn.Linear(d, d)
        self.heads = heads
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads
        e = d // h
        q = self.query_projection(x).view(b, t, h, e).permute(0, 2, 1, 3)  # [B, H, T, E]
        scores = q @ q.transpose(-1, -2) / math.sqrt(e)
        a = self.drop(torch.softmax(scores, dim=-1))
        o = a @ q  # [B, H, T, E]; the reference's [B,T,H,E] -> permute -> reshape equals this flat layout
        return self.out_projection(o.reshape(b, t, d))


class EncoderLayer(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.attention = QkvAttention(d, heads, dropout)
        self.conv1 = nn.Conv1d(d, 4 * d, 1)
        self.conv2 = nn.Conv1d(4 * d, d, 1)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.drop(self.attention(x))
        y = self.norm1(x)
        y = self.drop(F.relu(F.linear(y, self.conv1.weight.squeeze(-1), self.conv1.bias)))
        y = self.drop(F.linear(y, self.conv2.weight.squeeze(-1), self.conv2.bias))
        return self.norm2(x + y)


class TokenEncoder(nn.Module):
    def __init__(self, d, heads, layers, dropout):
        super().__init__()
        self.attn_layers = nn.ModuleList([EncoderLayer(d, heads, dropout) for _ in range(layers)])
        self.norm_layer = nn.LayerNorm(d)

    def forward(self, x):
        for layer in self.attn_layers:
            x = layer(x)
        return self.norm_layer(x)


class CribEncoder(nn.Module):
    def __init__(self, patch_len, patches, d, heads, layers, dropout):
        super().__init__()
        self.enc_embedding_1 = ValueEmbedding(d)
        self.enc_embedding_2 = TCN(patch_len, [64, d], 3, dropout)
        self.encoder = TokenEncoder(d, heads, layers, dropout)
        self.projector = nn.Sequential(nn.Linear(patches * d, d), nn.ReLU(), nn.Linear(d, 2 * d))
        self.d = d

    def forward(self, x):  # x [B, P, N, L]
        b, p, n, l = x.shape
        t = self.enc_embedding_2(x.permute(0, 3, 2, 1))  # [B, D, N, P]
        t = t.permute(0, 3, 2, 1).reshape(b, p * n, self.d)
        e = self.encoder(t)
        u = self.projector(e.reshape(b, p, n, self.d).permute(0, 2, 1, 3).reshape(b, n, p * self.d))
        loc = u[..., : self.d]
        var = F.softplus(u[..., self.d:]) + 1e-9
        kl = 0.5 * (var + loc * loc - 1 - var.log()).sum(-1)
        kl = torch.where(torch.isfinite(kl), kl, torch.zeros_like(kl)).sum()
        return e, loc, var, kl


class Predictor(nn.Module):
    def __init__(self, patches, d, horizon, dropout):
        super().__init__()
        self.prediction_1 = nn.Linear(patches * d, d)
        self.prediction_2 = nn.Linear(d, horizon)
        self.prediction_3 = TCN(d, [d // 2, d // 2], 3, dropout)  # dead
        self.prediction_4 = nn.Linear(patches * d // 2, d)  # dead
        self.prediction_5 = nn.Linear(d, horizon)  # dead

    def forward(self, e, p, n, d):
        b = e.shape[0]
        t = e.reshape(b, p, n, d).permute(0, 2, 1, 3).reshape(b, n, p * d)
        return self.prediction_2(F.relu(self.prediction_1(t))).permute(0, 2, 1)


class RevIN(nn.Module):
    def __init__(self):
        super().__init__()
        self.affine_weight = nn.Parameter(torch.ones(1))
        self.affine_bias = nn.Parameter(torch.zeros(1))


class Crib(nn.Module):
    def __init__(self, lookback, horizon, patch_len=8, d=32, heads=4, layers=3, dropout=0.1):
        super().__init__()
        self.patch_len = patch_len
        self.patches = lookback // patch_len
        self.d = d
        self.ini_embedding = nn.Linear(patch_len, d)  # dead
        self.encoder = CribEncoder(patch_len, self.patches, d, heads, layers, dropout)
        self.predictor = Predictor(self.patches, d, horizon, dropout)
        self.revinlayer = RevIN()
        self.enc_pos_emded = PosTable((patch_len + 1) // 2 * 2)
        self.dec_pos_emded = PosTable(d)  # dead

    def forward(self, x, y=None, eps=None, return_all=False):
        """x: zero-filled patches [B, P, N, L]. Training (self.training or eps given) also encodes the second view."""
        b, p, n, l = x.shape
        series = x.permute(0, 1, 3, 2).reshape(b, p * l, n)
        mu = series.mean(1, keepdim=True).detach()
        sd = (series.var(1, keepdim=True, unbiased=False) + 1e-5).sqrt().detach()
        s1 = (series - mu) / sd * self.revinlayer.affine_weight + self.revinlayer.affine_bias
        x1 = s1.reshape(b, p, l, n).permute(0, 1, 3, 2).reshape(b, p * n, l)
        x1 = (x1 + self.enc_pos_emded.pe[0, : p * n, :l]).reshape(b, p, n, l)
        e1, loc, var, kl = self.encoder(x1)
        pred = self.predictor(e1, p, n, self.d)
        pred = (pred - self.revinlayer.affine_bias) / (self.revinlayer.affine_weight + 1e-10) * sd + mu
        out = dict(pred=pred, e1=e1, loc=loc, var=var, kl=kl, mu=mu, sd=sd)
        if self.training or eps is not None:
            with torch.no_grad():
                m, s = x1.mean(), x1.std()
            z = torch.randn_like(x1) if eps is None else eps
            x2 = x1 + 0.01 * (m + s * z)
            out["e2"] = self.encoder(x2)[0]
            out["m"], out["s"] = m, s
            if y is not None:
                out["l_pred"] = (pred - y).abs().mean()
                out["l_cons"] = ((e1 - out["e2"]) ** 2).mean()
                out["loss"] = out["l_pred"] + out["l_cons"] + 1e-6 * kl
        return out if return_all else pred


# ------------------------------------------------------------------------------------------------
# Benchmark cases (must match CribCases.cs: same block/size strings and shapes)
# ------------------------------------------------------------------------------------------------

def from_series(series, mask, patch_len):
    """[B, T, N] window + observed mask (1 = observed) -> zero-filled patches [B, P, N, L] (what CribNetwork does)."""
    b, t, n = series.shape
    x = series.masked_fill(mask == 0, 0.0)
    return x.reshape(b, t // patch_len, patch_len, n).permute(0, 1, 3, 2)


def _etth1_inputs(b=32, lookback=24, n=7, horizon=24):
    g = torch.Generator().manual_seed(0)
    series = torch.randn(b, lookback, n, generator=g)
    mask = (torch.rand(b, lookback, n, generator=g) >= 0.2).float()  # 20 % point missingness, as the ETTh1 log
    target = torch.randn(b, horizon, n, generator=g)
    return series, mask, target


def cases():
    """ETTh1 setting of the spec's log: batch 32, L_in 24 -> S 24, 7 variates, patch 8, D 32, H 4, E 3, dropout 0.1."""
    eval_model = Crib(24, 24, patch_len=8, d=32, heads=4, layers=3, dropout=0.1).eval()
    train_model = Crib(24, 24, patch_len=8, d=32, heads=4, layers=3, dropout=0.1).train()
    series, mask, target = _etth1_inputs()
    return [
        dict(block="CRIB", size="B 32, L_in 24->24, N 7, patch 8, D 32, E 3 (eval forecast)",
             module=eval_model, inputs=[series, mask],
             forward=lambda m, inp: m(from_series(inp[0], inp[1], 8))),
        dict(block="CRIB-train-loss", size="B 32, L_in 24->24, N 7, patch 8, D 32, E 3 (two views + loss)",
             module=train_model, inputs=[series, mask, target],
             forward=lambda m, inp: m(from_series(inp[0], inp[1], 8), inp[2], return_all=True)["loss"]),
    ]


# ------------------------------------------------------------------------------------------------
# Golden self-test
# ------------------------------------------------------------------------------------------------

def _fill(shape, c0, a, f, g, p):
    n = 1
    for s in shape:
        n *= s
    vals = [c0 + a * math.sin(f * j + g * j * j + p) for j in range(n)]
    return torch.tensor(vals, dtype=torch.float64).float().reshape(shape)


def _golden_path():
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in [os.path.join(here, "../../../test/MLNet.Attention.Tests/Goldens/crib.md"), "/work/shared/spec/goldens/crib.md"]:
        if os.path.exists(cand):
            return cand
    raise FileNotFoundError("crib.md golden file")


def _self_test():
    text = open(_golden_path()).read()
    row = re.compile(r"^\|\s*(?:\d+\s*\|\s*)?`([^`]+)`\s*\|.*?\|\s*\[([\d,\s]+)\]\s*\|\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|"
                     r"\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|\s*([-\d.e]+)\s*\|\s*$")
    fills = {}
    for line in text.splitlines():
        m = row.match(line)
        if m:
            shape = [int(s) for s in m.group(2).split(",")]
            fills[m.group(1)] = _fill(shape, *[float(m.group(i)) for i in range(3, 8)])
    model = Crib(12, 5, patch_len=3, d=12, heads=4, layers=2, dropout=0.0)
    params = dict(model.named_parameters())
    assert len(params) == 82, len(params)
    with torch.no_grad():
        for k, v in params.items():
            v.copy_(fills[k])
    mask = torch.tensor([0.0 if j % 7 == 3 else 1.0 for j in range(2 * 4 * 3 * 3)]).reshape(2, 4, 3, 3)
    x = fills["x_raw"] * mask
    model.eval()
    out = model(x, fills["y"], eps=fills["Z"], return_all=True)
    checks = [
        ("pred", out["pred"], 13.058424, 18.973046, {(0, 0): [0.82279152, 0.22748759, 0.12732092],
                                                     (-1, -1): [-0.36322773, 0.64540803, 1.3059452]}),
        ("e1", out["e1"], 1.073228, 243.26814, {(0, 0): [1.1508765, -1.5583124, 1.1590608, -1.0090852, 1.5569639,
                                                         -1.1142011, 1.2349193, -1.0613626, 0.49040341, -0.52135199,
                                                         -0.56226254, 0.48505214]}),
        ("loc", out["loc"], 10.192488, 27.4496, {}),
        ("var", out["var"], 48.65582, 48.65582, {}),
        ("e2", out["e2"], 1.116863, 243.20695, {(-1, -1): [-0.090690903, 0.55011886, 0.99353045, 0.7482636,
                                                           1.541654, -0.95900184, -0.76502299, -0.25330856,
                                                           0.22464949, -1.7691613, 1.3240459, -0.91036284]}),
    ]
    for name, t, s, sa, slices in checks:
        worst = max([0.0] + [max(abs(a - b) for a, b in zip(t[idx].tolist(), vals)) for idx, vals in slices.items()])
        print(f"{name}: sum {t.double().sum().item():.7f} (golden {s}), sum|.| {t.double().abs().sum().item():.7f} "
              f"(golden {sa}), max slice dev {worst:.2e}")
    for name, gold in [("m", 0.084130645), ("s", 1.1183406), ("kl", 13.941632), ("l_pred", 0.77389181),
                       ("l_cons", 0.00018615735), ("loss", 0.7740919)]:
        v = out[name].item()
        print(f"{name}: {v:.8g} (golden {gold}), rel dev {abs(v - gold) / abs(gold):.2e}")
    total = sum(p.numel() for p in Crib(24, 24).parameters())
    print("parameters, ETTh1 default (spec 81,570):", total)
    print("parameters, D 128 (spec 942,642):", sum(p.numel() for p in Crib(24, 24, d=128).parameters()))


if __name__ == "__main__":
    _self_test()
