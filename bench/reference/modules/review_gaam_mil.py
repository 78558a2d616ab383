"""Reviewer's expected values for the extra GAAM/DAAM and attention-MIL tests (GaamReviewTests.cs,
AttentionMilReviewTests.cs). Written independently from shared/spec/gaam.md and shared/spec/acmil.md (formulas,
"Quirks of the reference"), following the reference forward code line by line: variant (A) = library
gaussian-adaptive-attention 0.1.5 GaussianBlock.py, variant (B) = DAAM-PEFT-paper-code DAAMv1.py DAAM/MultiHeadDAAM,
ACMIL = ACMIL_GA of dazhangyu123/ACMIL architecture/transformer.py, losses of Step3_WSI_classification_ACMIL.py.

Every parameter/input is filled as v[j] = c0 + a*sin(f*j + p) over the row-major flat index (double, then float32).
Run: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/reference/modules/review_gaam_mil.py  (PyTorch 1.13 CPU)."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


def fill(shape, c0, a, f, p, dtype=torch.float32):
    n = math.prod(shape)
    v = [c0 + a * math.sin(f * j + p) for j in range(n)]
    return torch.tensor(v, dtype=torch.float64).to(torch.float32).to(dtype).reshape(shape)


def show(name, t):
    flat = t.detach().to(torch.float64).reshape(-1).tolist()
    print(f"{name} {list(t.shape)}: " + ", ".join(f"{v:.9g}" for v in flat))


# ------------------------------------------------------------------------------------------- (A) library
class GaussianAdaptiveAttention(nn.Module):
    def __init__(self, norm_axis, num_gaussians, padding_value=None, eps=1e-8):
        super().__init__()
        self.norm_axis, self.padding_value, self.eps, self.n = norm_axis, padding_value, eps, num_gaussians
        self.mean_offsets = nn.Parameter(torch.zeros(num_gaussians))
        self.c = nn.Parameter(torch.exp(torch.randn(num_gaussians)))

    def forward(self, x):
        mask = x != self.padding_value if self.padding_value is not None else None
        xm = torch.where(mask, x, torch.zeros_like(x)) if mask is not None else x
        mean = xm.mean(dim=self.norm_axis, keepdim=True)
        var = xm.var(dim=self.norm_axis, keepdim=True) + self.eps
        mixture = 1
        for i in range(self.n):
            y = (x - (mean + self.mean_offsets[i])) / torch.sqrt(var)
            g = torch.exp(-((y ** 2) / (2.0 * (self.c[i] ** 2)))) / torch.sqrt(2 * torch.pi * (self.c[i] ** 2))
            mixture = mixture * g
        mixture = mixture / mixture.sum(dim=self.norm_axis, keepdim=True).clamp(min=self.eps)
        out = torch.where(mask, x * mixture, x) if mask is not None else x * mixture
        return out, mixture


class MultiHead(nn.Module):
    def __init__(self, norm_axis, heads, gaussians, padding_value=None):
        super().__init__()
        self.norm_axis, self.heads = norm_axis, heads
        self.attention_heads = nn.ModuleList([GaussianAdaptiveAttention(norm_axis, gaussians, padding_value) for _ in range(heads)])

    def forward(self, x):
        n = x.shape[self.norm_axis]
        chunk = n // self.heads
        outs, ws = [], []
        for i in range(self.heads):
            s = i * chunk
            e = s + chunk if i < self.heads - 1 else n
            o, w = self.attention_heads[i](x.narrow(self.norm_axis, s, e - s))
            outs.append(o)
            ws.append(w)
        return torch.cat(outs, self.norm_axis), torch.cat(ws, self.norm_axis)


class Block(nn.Module):
    def __init__(self, axes, heads, gaussians, padding_value=None):
        super().__init__()
        self.layers = nn.ModuleList([MultiHead(a, h, g, padding_value) for a, h, g in zip(axes, heads, gaussians)])

    def forward(self, x):
        ws = []
        for layer in self.layers:
            o, w = layer(x)
            ws.append(w)
            x = o + x
        return x, ws


def set_params(module, seed_phase):
    with torch.no_grad():
        for k, (name, p) in enumerate(module.named_parameters()):
            if name.endswith("c"):
                p.copy_(fill(p.shape, 1.1, 0.4, 0.7, 0.3 * k + seed_phase))
            elif name.endswith("mean_offsets") or name.endswith("mean_offset"):
                p.copy_(fill(p.shape, 0.0, 0.3, 0.9, 0.5 * k + seed_phase))
            else:
                raise ValueError(name)


# ------------------------------------------------------------------------------------------- (B) paper DAAM
class DAAM(nn.Module):
    def __init__(self, feature_size, c=2, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.c = nn.Parameter(torch.full((1, feature_size), c, dtype=torch.float))
        self.mean_offset = nn.Parameter(torch.zeros((1, feature_size), dtype=torch.float))

    def forward(self, x):
        b, l, t, d = x.size()
        y = F.adaptive_avg_pool1d(x.view(b, l * d, t), 1).view(b, l, d)
        mean = y.mean(dim=1, keepdim=True)
        var = (y ** 2).mean(dim=1, keepdim=True) - mean ** 2
        var = abs(var) + 1e-8
        y_norm = (y - (mean + self.mean_offset)) / torch.sqrt(var + self.eps)
        w = torch.exp(-(y_norm ** 2 / (2 * self.c))).unsqueeze(2).expand(b, l, t, d)
        return x * w


class MultiHeadDAAM(nn.Module):
    def __init__(self, num_layers, feature_size, num_heads=8, c=2, eps=1e-5):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, num_layers // num_heads
        self.gcts = nn.ModuleList([DAAM(feature_size, c, eps) for _ in range(num_heads)])

    def forward(self, x):
        x = x.squeeze().unsqueeze(0)[:, :, None, :] if x.shape[0] == 1 else x.squeeze()[:, :, None, :]
        b, l, t, d = x.size()
        x = x.view(b, self.num_heads, self.head_dim, t, d)
        return torch.cat([self.gcts[i](x[:, i]).mean(dim=2) for i in range(self.num_heads)], 1).view(b, l, d)


def gaam_cases():
    print("== G1: GaussianBlock([-1, 1], [2, 1], [2, 3], 2 layers, padding -1) on [2, 4, 6]")
    blk = Block([-1, 1], [2, 1], [2, 3], padding_value=-1.0)
    set_params(blk, 0.1)
    x = fill([2, 4, 6], 0.3, 1.4, 0.53, 0.2)
    flat = x.reshape(-1)
    flat[[1, 8, 9, 20, 33, 47]] = -1.0
    y, ws = blk(x)
    show("y", y)
    show("w0", ws[0])
    show("w1", ws[1])

    print("== G2: MultiHead(axis 0, 2 heads, 1 Gaussian) on float64 [5, 3] (chunks 2, 3); single head eps 1e-3 axis -1")
    mh = MultiHead(0, 2, 1)
    set_params(mh, 0.7)
    x2 = fill([5, 3], -0.2, 1.1, 0.91, 0.4, torch.float64)
    y2, w2 = mh(x2)
    assert y2.dtype == torch.float64
    show("y", y2)
    sh = GaussianAdaptiveAttention(-1, 3, eps=1e-3)
    set_params(sh, 1.3)
    y3, w3 = sh(x2)
    show("y_single_eps1e-3", y3)

    print("== G3: MultiHeadDAAM(L 4, D 3, H 4) batch 1 (head_dim 1), and H 2 in float64, batch 2")
    m4 = MultiHeadDAAM(4, 3, 4)
    set_params(m4, 0.2)
    with torch.no_grad():  # one layer per head: var = 1e-8, so z = -offset / sqrt(1e-8 + 1e-5); keep offsets ~1e-3
        for g in m4.gcts:
            g.mean_offset.mul_(0.01)
    x4 = fill([1, 4, 3], 0.1, 1.3, 0.77, 0.9)
    show("y_h4_b1", m4(x4))
    m2 = MultiHeadDAAM(4, 3, 2)
    set_params(m2, 0.5)
    x5 = fill([2, 4, 3], -0.3, 1.2, 0.41, 1.1, torch.float64)
    y5 = m2(x5)
    assert y5.dtype == torch.float64
    show("y_h2_f64", y5)


# ------------------------------------------------------------------------------------------- ACMIL_GA
class Acmil(nn.Module):
    def __init__(self, d_feat, d_in, n_class, d_att, m, k, p):
        super().__init__()
        self.dimreduction = nn.Module()
        self.dimreduction.fc1 = nn.Linear(d_feat, d_in, bias=False)
        self.attention = nn.Module()
        self.attention.attention_V = nn.Sequential(nn.Linear(d_in, d_att), nn.Tanh())
        self.attention.attention_U = nn.Sequential(nn.Linear(d_in, d_att), nn.Sigmoid())
        self.attention.attention_weights = nn.Linear(d_att, m)
        self.classifier = nn.ModuleList()
        for _ in range(m):
            c = nn.Module()
            c.fc = nn.Linear(d_in, n_class)
            self.classifier.append(c)
        self.Slide_classifier = nn.Module()
        self.Slide_classifier.fc = nn.Linear(d_in, n_class)
        self.k, self.p, self.m = k, p, m
        self.draws = None

    def forward(self, x):
        x = x[0]
        x = F.relu(self.dimreduction.fc1(x))
        a = self.attention
        A = a.attention_weights(a.attention_V(x) * a.attention_U(x)).transpose(1, 0)
        if self.k > 0 and self.training:
            k, n = A.shape
            kk = min(self.k, n)
            _, indices = torch.topk(A, kk, dim=-1)
            r = self.draws if self.draws is not None else torch.rand(*indices.shape, device=A.device)
            sel = torch.argsort(r, dim=-1)[:, :int(kk * self.p)]
            masked = indices[torch.arange(indices.shape[0]).unsqueeze(-1), sel]
            rm = torch.ones(k, n)
            rm.scatter_(-1, masked, 0)
            A = A.masked_fill(rm == 0, -1e9)
        A_out = A
        A = F.softmax(A, dim=1)
        afeat = torch.mm(A, x)
        outs = [head.fc(afeat[i]) for i, head in enumerate(self.classifier)]
        bag_A = F.softmax(A_out, dim=1).mean(0, keepdim=True)
        return torch.stack(outs, 0), self.Slide_classifier.fc(torch.mm(bag_A, x)), A_out.unsqueeze(0)


def losses(branch, slide, attn, label, m):
    labels = torch.tensor([label])
    loss0 = F.cross_entropy(branch, labels.repeat_interleave(m)) if m > 1 else torch.tensor(0.)
    loss1 = F.cross_entropy(slide, labels)
    diff = torch.tensor(0.)
    attn = torch.softmax(attn, dim=-1)
    for i in range(m):
        for j in range(i + 1, m):
            diff += torch.cosine_similarity(attn[:, i], attn[:, j], dim=-1).mean() / (m * (m - 1) / 2)
    return loss0, loss1, diff, diff + loss0 + loss1


def set_mil_params(net):
    with torch.no_grad():
        for k, (name, p) in enumerate(net.named_parameters()):
            if p.dim() == 2:
                p.copy_(fill(p.shape, 0.0, 1.0 / math.sqrt(p.shape[1]), 0.61, 0.4 * k))
            else:
                p.copy_(fill(p.shape, 0.0, 0.1, 0.37, 0.4 * k))


def run_mil(title, net, x, label, train, draws=None):
    print("== " + title)
    net.train(train)
    net.draws = draws
    branch, slide, a_out = net(x)
    show("branch", branch)
    show("slide", slide)
    show("A_out", a_out)
    show("P", torch.softmax(a_out, -1))
    if label is not None:
        l0, l1, ld, tot = losses(branch, slide, a_out, label, net.m)
        print(f"L_p {l0.item():.9g} L_b {l1.item():.9g} L_d {ld.item():.9g} total {tot.item():.9g}")


def mil_cases():
    # M1: K > N (kk = N = 3, int(3*0.6) = 1 masked per branch), M 2, C 2, injected draws.
    net = Acmil(5, 4, 2, 3, m=2, k=10, p=0.6)
    set_mil_params(net)
    x = fill([1, 3, 5], 0.1, 0.9, 0.47, 0.3)
    r = fill([2, 3], 0.5, 0.45, 1.7, 0.2)
    run_mil("M1 eval (K > N)", net, x, 1, False)
    run_mil("M1 train, injected R " + str(r.tolist()), net, x, 1, True, r)

    # M2: one-instance bag, p = 1 (int(1*1.0) = 1: the only instance gets -1e9; softmax is still 1), M 3.
    net2 = Acmil(5, 4, 2, 3, m=3, k=2, p=1.0)
    set_mil_params(net2)
    x2 = fill([1, 1, 5], -0.2, 1.0, 0.83, 0.6)
    run_mil("M2 train, N 1, p 1, R 0.3/0.6/0.9", net2, x2, 0, True, torch.tensor([[0.3], [0.6], [0.9]]))

    # M3: one class (C = 1), M 2, eval.
    net3 = Acmil(5, 4, 1, 3, m=2, k=10, p=0.6)
    set_mil_params(net3)
    run_mil("M3 eval, C 1", net3, x, 0, False)

    # M4: default draws from the global generator seeded with 123 (torch.rand(M, kk) once per forward).
    net4 = Acmil(5, 4, 3, 3, m=3, k=4, p=0.5)
    set_mil_params(net4)
    x4 = fill([1, 8, 5], 0.05, 1.1, 0.29, 1.2)
    torch.manual_seed(123)
    print("rand after seed 123:", torch.rand(3, 4).reshape(-1).tolist())
    torch.manual_seed(123)
    run_mil("M4 train, global seed 123", net4, x4, 2, True)


if __name__ == "__main__":
    torch.set_printoptions(precision=9)
    gaam_cases()
    mil_cases()
