"""Independent PyTorch reference for the attention multiple-instance-learning blocks (gated ABMIL and ACMIL),
written from shared/spec/acmil.md only. Used by the module benchmark (`cases()`) and, when run as a script,
checks itself against shared/spec/goldens/acmil.md (prints the max abs deviation per case).

Conventions shared with the C# modules (src/Modules/MultipleInstance): bags come as [B, N_max, D] plus an optional
boolean mask [B, N_max] (True = real instance); padded instances get logit -inf (zero attention); STKIM masks exactly
int(kk*p) of each branch's top-kk logits (kk = min(K, N_real)) with -1e9, one draw of U(0,1)^[M, kk] per bag.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class DimReduction(nn.Module):
    def __init__(self, d_feat, d_inner):
        super().__init__()
        self.fc1 = nn.Linear(d_feat, d_inner, bias=False)

    def forward(self, x):
        return F.relu(self.fc1(x))


class Classifier(nn.Module):
    def __init__(self, d_inner, n_class, dropout=0.0):
        super().__init__()
        self.fc = nn.Linear(d_inner, n_class)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        return self.fc(self.dropout(x))


class GatedAttention(nn.Module):
    """Scores [B, N, L] -> logits [B, K, N]; padded positions (mask False) get -inf."""

    def __init__(self, d_in, d_attn, k):
        super().__init__()
        self.attention_V = nn.Sequential(nn.Linear(d_in, d_attn), nn.Tanh())
        self.attention_U = nn.Sequential(nn.Linear(d_in, d_attn), nn.Sigmoid())
        self.attention_weights = nn.Linear(d_attn, k)

    def forward(self, h, mask=None):
        a = self.attention_weights(self.attention_V(h) * self.attention_U(h)).transpose(1, 2)
        if mask is not None:
            a = a.masked_fill(~mask.unsqueeze(1), float("-inf"))
        return a


def _prepare(x, mask):
    if x.dim() == 2:
        x = x.unsqueeze(0)
        if mask is not None and mask.dim() == 1:
            mask = mask.unsqueeze(0)
    return x, mask


class GatedAbmil(nn.Module):
    def __init__(self, d_feat, d_inner, n_class, d_attn=128, dropout=0.0):
        super().__init__()
        self.dimreduction = DimReduction(d_feat, d_inner)
        self.attention = GatedAttention(d_inner, d_attn, 1)
        self.classifier = Classifier(d_inner, n_class, dropout)

    def forward(self, x, mask=None):
        x, mask = _prepare(x, mask)
        h = self.dimreduction(x)
        if mask is not None:
            h = h.masked_fill(~mask.unsqueeze(-1), 0.0)
        logits = self.attention(h, mask)            # [B, 1, N]
        a = torch.softmax(logits, -1)
        z = torch.bmm(a, h).squeeze(1)              # [B, L]
        return self.classifier(z), a.squeeze(1), logits.squeeze(1)


class Acmil(nn.Module):
    def __init__(self, d_feat, d_inner, n_class, branches=5, top_k=10, mask_ratio=0.6, d_attn=128, dropout=0.0,
                 draws=None):
        super().__init__()
        self.dimreduction = DimReduction(d_feat, d_inner)
        self.attention = GatedAttention(d_inner, d_attn, branches)
        self.classifier = nn.ModuleList([Classifier(d_inner, n_class, dropout) for _ in range(branches)])
        self.Slide_classifier = Classifier(d_inner, n_class, dropout)
        self.branches, self.top_k, self.mask_ratio = branches, top_k, mask_ratio
        self.draws = draws  # callable(rows, cols) -> U(0,1) tensor; None = torch.rand

    def stkim(self, logits, mask):
        """logits [B, M, N] (padded at -inf) -> same with exactly int(kk*p) of each branch's top-kk set to -1e9."""
        b, m, n = logits.shape
        counts = mask.sum(1).tolist() if mask is not None else [n] * b
        drop = torch.zeros(b, m, n, dtype=torch.bool, device=logits.device)
        for i in range(b):
            kk = min(self.top_k, int(counts[i]))
            n_mask = int(kk * self.mask_ratio)
            r = self.draws(m, kk) if self.draws is not None else torch.rand(m, kk)  # always drawn, as the reference
            if n_mask == 0:
                continue
            _, idx = torch.topk(logits[i], kk, dim=-1)
            sel = torch.argsort(r.to(logits.device), dim=-1)[:, :n_mask]
            drop[i].scatter_(-1, idx.gather(-1, sel), True)
        return logits.masked_fill(drop, -1e9)

    def forward(self, x, mask=None):
        x, mask = _prepare(x, mask)
        h = self.dimreduction(x)
        if mask is not None:
            h = h.masked_fill(~mask.unsqueeze(-1), 0.0)
        a_out = self.attention(h, mask)                          # [B, M, N]
        if self.training and self.top_k > 0:
            a_out = self.stkim(a_out, mask)
        att = torch.softmax(a_out, -1)                           # [B, M, N]
        z = torch.bmm(att, h)                                     # [B, M, L]
        branch = torch.stack([c(z[:, i]) for i, c in enumerate(self.classifier)], 1)  # [B, M, C]
        bag_att = att.mean(1)                                     # [B, N]
        slide = self.Slide_classifier(torch.bmm(bag_att.unsqueeze(1), h).squeeze(1))  # [B, C]
        return branch, slide, a_out, att, bag_att


def acmil_losses(branch, slide, att, labels):
    """(L_p, L_b, L_d, total): mean branch CE (0 if M = 1), slide CE, mean pairwise cosine of branch maps."""
    b, m, c = branch.shape
    zero = slide.new_zeros(())
    lp = F.cross_entropy(branch.reshape(b * m, c), labels.repeat_interleave(m)) if m > 1 else zero
    lb = F.cross_entropy(slide, labels)
    if m > 1:
        pairs = [F.cosine_similarity(att[:, i], att[:, j], dim=-1, eps=1e-8) for i in range(m) for j in range(i + 1, m)]
        ld = torch.stack(pairs, 0).sum(0).mean() / (m * (m - 1) / 2)
    else:
        ld = zero
    return lp, lb, ld, lp + lb + ld


# ----------------------------------------------------------------------------------------------------------------
# Benchmark cases (same block/size strings as bench/MLNet.Attention.Benchmarks/Modules/MilCases.cs)

PADDED_LENGTHS = [2000, 1500, 1800, 900, 2000, 1200, 600, 1700]


def _padded_batch(d):
    n_max = max(PADDED_LENGTHS)
    x = torch.randn(len(PADDED_LENGTHS), n_max, d)
    mask = torch.arange(n_max).unsqueeze(0) < torch.tensor(PADDED_LENGTHS).unsqueeze(1)
    return x, mask


def cases():
    torch.manual_seed(0)
    labels1 = torch.zeros(1, dtype=torch.long)
    labels8 = torch.zeros(len(PADDED_LENGTHS), dtype=torch.long)

    def abmil_fwd(mod, inp):
        return mod(*inp)[0]

    def acmil_fwd(mod, inp):
        branch, slide, _, att, _ = mod(*inp)
        return acmil_losses(branch, slide, att, labels1 if branch.shape[0] == 1 else labels8)[3]

    abmil = GatedAbmil(1024, 512, 2).eval()
    acmil = Acmil(1024, 512, 2, branches=5, top_k=10, mask_ratio=0.6).train()
    abmil_b = GatedAbmil(1024, 512, 2).eval()
    acmil_b = Acmil(1024, 512, 2, branches=5, top_k=10, mask_ratio=0.6).train()
    bag = torch.randn(1, 8000, 1024)
    return [
        dict(block="ABMIL (gated)", size="bag N 8000, D 1024→512, C 2", module=abmil, inputs=[bag], forward=abmil_fwd),
        dict(block="ACMIL (train, STKIM, 3 losses)", size="bag N 8000, D 1024→512, M 5, K 10, p 0.6, C 2",
             module=acmil, inputs=[bag], forward=acmil_fwd),
        dict(block="ABMIL (gated)", size="8 padded bags N≤2000, D 1024→512, C 2", module=abmil_b,
             inputs=list(_padded_batch(1024)), forward=abmil_fwd),
        dict(block="ACMIL (train, STKIM, 3 losses)", size="8 padded bags N≤2000, D 1024→512, M 5, K 10, p 0.6, C 2",
             module=acmil_b, inputs=list(_padded_batch(1024)), forward=acmil_fwd),
    ]


# ----------------------------------------------------------------------------------------------------------------
# Self-test against shared/spec/goldens/acmil.md

def _fill(shape, c0, a, f, g, p):
    n = math.prod(shape)
    return torch.tensor([c0 + a * math.sin(f * j + g * j * j + p) for j in range(n)], dtype=torch.float64) \
        .to(torch.float32).reshape(shape)


FILLS = {
    "acmil.dimreduction.fc1.weight": ([11, 13], 0, 0.3328, 0.3645, 0.00183, 1.1938),
    "acmil.attention.attention_V.0.weight": ([7, 11], 0, 0.3618, 0.8898, 7.3e-05, 5.7934),
    "acmil.attention.attention_V.0.bias": ([7], 0, 0.1, 0.5652, 0.001315, 4.1098),
    "acmil.attention.attention_U.0.weight": ([7, 11], 0, 0.3618, 0.2405, 0.002558, 2.4263),
    "acmil.attention.attention_U.0.bias": ([7], 0, 0.1, 0.7658, 0.000801, 0.7427),
    "acmil.attention.attention_weights.weight": ([4, 7], 0, 0.4536, 0.4411, 0.002043, 5.3423),
    "acmil.attention.attention_weights.bias": ([4], 0, 0.1, 0.1165, 0.000286, 3.6587),
    "acmil.classifier.0.fc.weight": ([3, 11], 0, 0.3618, 0.6418, 0.001528, 1.9751),
    "acmil.classifier.0.fc.bias": ([3], 0, 0.1, 0.3171, 0.002771, 0.2915),
    "acmil.classifier.1.fc.weight": ([3, 11], 0, 0.3618, 0.8424, 0.001014, 4.8912),
    "acmil.classifier.1.fc.bias": ([3], 0, 0.1, 0.5178, 0.002256, 3.2076),
    "acmil.classifier.2.fc.weight": ([3, 11], 0, 0.3618, 0.1931, 0.000499, 1.524),
    "acmil.classifier.2.fc.bias": ([3], 0, 0.1, 0.7184, 0.001742, 6.1236),
    "acmil.classifier.3.fc.weight": ([3, 11], 0, 0.3618, 0.3937, 0.002984, 4.44),
    "acmil.classifier.3.fc.bias": ([3], 0, 0.1, 0.0691, 0.001227, 2.7564),
    "acmil.Slide_classifier.fc.weight": ([3, 11], 0, 0.3618, 0.5944, 0.002469, 1.0729),
    "acmil.Slide_classifier.fc.bias": ([3], 0, 0.1, 0.2697, 0.000712, 5.6725),
    "abmil.dimreduction.fc1.weight": ([11, 13], 0, 0.3328, 0.795, 0.001955, 3.9889),
    "abmil.attention.attention_V.0.weight": ([7, 11], 0, 0.3618, 0.4704, 0.000197, 2.3053),
    "abmil.attention.attention_V.0.bias": ([7], 0, 0.1, 0.1457, 0.00144, 0.6217),
    "abmil.attention.attention_U.0.weight": ([7, 11], 0, 0.3618, 0.671, 0.002683, 5.2213),
    "abmil.attention.attention_U.0.bias": ([7], 0, 0.1, 0.3463, 0.000925, 3.5378),
    "abmil.attention.attention_weights.weight": ([1, 7], 0, 0.4536, 0.8717, 0.002168, 1.8542),
    "abmil.attention.attention_weights.bias": ([1], 0, 0.1, 0.547, 0.00041, 0.1706),
    "abmil.classifier.fc.weight": ([3, 11], 0, 0.3618, 0.2223, 0.001653, 4.7702),
    "abmil.classifier.fc.bias": ([3], 0, 0.1, 0.7476, 0.002896, 3.0866),
    "bag1": ([1, 11, 13], 0.2, 1, 0.29, 0.0011, 0.4),
    "bag2": ([1, 4, 13], -0.1, 0.9, 0.47, 0.0023, 1.7),
    "R1": ([4, 5], 0.5, 0.45, 1.13, 0.0071, 0.3),
    "R2": ([4, 4], 0.5, 0.45, 0.79, 0.0053, 2.1),
}

GOLDEN = {
    ("eval", 1): dict(branch0=[0.022390218, -0.48098204, -0.42049971], branch_last=[-0.77707863, -0.79397845, 0.00081440806],
                      slide=[0.53998876, 0.22634165, -0.55638015],
                      a0=[-0.23749153, 0.0094585791, 0.060927816, -0.18961985, -0.23299396, -0.063544795, 0.034169316,
                          0.019217312, -0.10958824, -0.21899159, 0.018746652]),
    ("eval", 2): dict(branch0=[-0.011800114, 0.14404893, 0.085801601], branch_last=[0.23549496, -0.36680025, -0.25026762],
                      slide=[-0.19587408, -0.066993095, -0.019997254],
                      a0=[0.04152333, -0.00019713119, 0.098158643, -0.15412414]),
    ("train", 1): dict(branch0=[-0.0016259234, -0.76095223, -0.62019473], branch_last=[-0.5121879, -0.68123782, -0.083019942],
                       slide=[0.54767638, 0.2204145, -0.57526451],
                       p0=[0.11106838, 0, 0, 0.11651473, 0.11156905, 0.13217051, 0.14573748, 0.14357463, 0.12622289,
                           0.11314227, 0],
                       losses=[1.0911264, 1.8389333, 0.72030383, 3.6503634]),
    ("train", 2): dict(branch0=[0.060363881, 0.65855443, 0.28838691], branch_last=[0.73143619, -0.16786548, -0.44385532],
                       slide=[-0.67534351, -0.17662746, 0.54131895], p0=[0.48584494, 0, 0.51415503, 0],
                       losses=[1.1214054, 1.7955036, 0.75143045, 3.6683395]),
    ("abmil", 1): dict(y=[-0.21016327, 0.20933825, -0.32349798], ce=[1.3412354]),
    ("abmil", 2): dict(y=[-0.41901785, 0.44115144, -0.55141771], ce=[1.4444575]),
}


def _load(module, prefix):
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(_fill(*FILLS[prefix + name]))


def _self_test():
    t = {k: _fill(*v) for k, v in FILLS.items() if "." not in k}
    acmil = Acmil(13, 11, 3, branches=4, top_k=5, mask_ratio=0.6, d_attn=7)
    abmil = GatedAbmil(13, 11, 3, d_attn=7)
    _load(acmil, "acmil.")
    _load(abmil, "abmil.")
    labels = {1: 2, 2: 0}
    worst = 0.0
    for (mode, bag), g in GOLDEN.items():
        x = t[f"bag{bag}"]
        y = torch.tensor([labels[bag]])
        got = {}
        if mode == "abmil":
            logits = abmil(x)[0]
            got["y"] = logits[0]
            got["ce"] = F.cross_entropy(logits, y).reshape(1)
        else:
            r = t[f"R{bag}"]
            acmil.draws = lambda m, kk, r=r: r
            acmil.train(mode == "train")
            branch, slide, a_out, att, _ = acmil(x)
            got["branch0"], got["branch_last"], got["slide"] = branch[0, 0], branch[0, -1], slide[0]
            got["a0"], got["p0"] = a_out[0, 0], att[0, 0]
            got["losses"] = torch.stack(acmil_losses(branch, slide, att, y))
        dev = max((got[k].double() - torch.tensor(v, dtype=torch.float64)).abs().max().item() for k, v in g.items())
        worst = max(worst, dev)
        print(f"{mode:5s} bag {bag}: max |dev| = {dev:.3e}")
    # padding: a padded batch reproduces each bag alone
    acmil.train()
    acmil.draws = None
    acmil.eval()
    xb = torch.zeros(2, 11, 13)
    xb[0], xb[1, :4] = t["bag1"][0], t["bag2"][0]
    mask = torch.tensor([[True] * 11, [True] * 4 + [False] * 7])
    _, slide_b, _, att_b, _ = acmil(xb, mask)
    _, slide2, _, att2, _ = acmil(t["bag2"])
    pad_dev = max((slide_b[1] - slide2[0]).abs().max().item(), (att_b[1, :, :4] - att2[0]).abs().max().item(),
                  att_b[1, :, 4:].abs().max().item())
    print(f"padded batch vs bag alone: max |dev| = {pad_dev:.3e}")
    print(f"worst golden deviation: {worst:.3e}")
    assert worst < 1e-5 and pad_dev < 1e-6


if __name__ == "__main__":
    _self_test()
