"""Independent PyTorch reference for MVPA (multi-variate parallel attention) and one MVPFormer block.

Written from shared/spec/mvpa.md only (PyTorch path, not the Flash kernel). Run as a script to check the golden
values of shared/spec/goldens/mvpa.md (prints the max abs deviation per case).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class SwiGLU(nn.Module):
    def __init__(self, d, inner):
        super().__init__()
        self.gate_proj = nn.Linear(d, inner, bias=False)
        self.up_proj = nn.Linear(d, inner, bias=False)
        self.down_proj = nn.Linear(inner, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MVPA(nn.Module):
    def __init__(self, d, heads, kv_heads, window=10, global_last=True, attn_pdrop=0.1, resid_pdrop=0.1):
        super().__init__()
        self.h, self.hkv, self.dh = heads, kv_heads, d // heads
        self.kv = self.dh * kv_heads
        self.window, self.global_last = window, global_last
        self.attn_bias = nn.Parameter(torch.zeros(3 * self.kv))
        self.q_attn = nn.Linear(d, d, bias=False)
        self.c_attn = nn.Linear(d, 2 * self.kv, bias=False)
        self.position_net = nn.Linear(d, self.kv, bias=False)
        self.channel_net = nn.Linear(d, self.kv, bias=False)
        self.c_proj = nn.Linear(d, d, bias=False)
        self.attn_dropout = nn.Dropout(attn_pdrop)
        self.resid_dropout = nn.Dropout(resid_pdrop)

    def forward(self, x, pos, chan, return_probs=False):
        B, T, C, d = x.shape
        N, H, G, Hkv, dh = T * C, self.h, self.h // self.hkv, self.hkv, self.dh
        xf = x.reshape(B, N, d)
        q = self.q_attn(xf).view(B, N, Hkv, G, dh).permute(0, 2, 3, 1, 4)          # [B,Hkv,G,N,dh]
        k, v = self.c_attn(xf).split(self.kv, dim=-1)
        k = k.view(B, N, Hkv, dh).permute(0, 2, 3, 1).unsqueeze(2)                  # [B,Hkv,1,dh,N]
        v = v.view(B, N, Hkv, dh).permute(0, 2, 1, 3).unsqueeze(2)                  # [B,Hkv,1,N,dh]
        u, bv, bw = (b.view(1, Hkv, 1, 1, dh) for b in self.attn_bias.split(self.kv))
        rt = self.position_net(pos).reshape(-1, T, Hkv, dh).permute(0, 2, 3, 1).unsqueeze(2)   # [1,Hkv,1,dh,T]
        rc = self.channel_net(chan).reshape(-1, C, Hkv, dh).permute(0, 2, 3, 1).unsqueeze(2)  # [1,Hkv,1,dh,C]
        content = (q + u) @ k                                                          # [B,Hkv,G,N,N]
        time = (q + bv) @ rt                                                           # [B,Hkv,G,N,T]
        chn = (q + bw) @ rc                                                            # [B,Hkv,G,N,C]
        dev = x.device
        t_idx = torch.arange(T, device=dev).repeat_interleave(C)                       # t of token r
        c_idx = torch.arange(C, device=dev).repeat(T)                                  # c of token r
        dt = t_idx[:, None] - torch.arange(T, device=dev)[None, :]                     # [N,T] t - t'
        ti = (T - 1 - dt).clamp(0, T - 1)
        ci = C - 1 - (c_idx[:, None] - torch.arange(C, device=dev)[None, :]).abs()     # [N,C]
        time = time.gather(-1, ti.expand(*time.shape[:-1], T))
        chn = chn.gather(-1, ci.expand(*chn.shape[:-1], C))
        time = time.unsqueeze(-1).expand(*time.shape, C).reshape(*time.shape[:-1], N)
        chn = chn.unsqueeze(-2).expand(*chn.shape[:-1], T, C).reshape(*chn.shape[:-1], N)
        tq = torch.arange(T, device=dev)
        win = (tq[:, None] - tq[None, :]).abs() <= self.window
        if self.global_last:
            win[T - 1, :] = True
        win = win.repeat_interleave(C, 0).repeat_interleave(C, 1)
        causal = (tq[None, :] > tq[:, None]).repeat_interleave(C, 0).repeat_interleave(C, 1)
        s = (content * win + time + chn) / math.sqrt(dh)
        s = s.masked_fill(causal, torch.finfo(s.dtype).min)
        p = self.attn_dropout(torch.softmax(s, dim=-1))
        o = (p @ v).permute(0, 3, 1, 2, 4).reshape(B, T, C, d)
        out = self.resid_dropout(self.c_proj(o))
        return (out, p.reshape(B, H, N, N)) if return_probs else out


class MVPFormerBlock(nn.Module):
    def __init__(self, d, heads, kv_heads, inner, window=10, eps=1e-5):
        super().__init__()
        self.ln_1 = RMSNorm(d, eps)
        self.attn = MVPA(d, heads, kv_heads, window)
        self.ln_2 = RMSNorm(d, eps)  # unused in forward (reference quirk)
        self.mlp = SwiGLU(d, inner)

    def forward(self, x, pos, chan):
        a = self.ln_1(x)
        return x + self.mlp(a) + self.attn(a, pos, chan)


def _mvpa_case(block):
    B, T, C, d, H, Hkv, inner = 4, 16, 16, 128, 8, 4, 320
    torch.manual_seed(0)
    if block == "MVPA":
        m = MVPA(d, H, Hkv).eval()
    else:
        m = MVPFormerBlock(d, H, Hkv, inner).eval()
    inputs = [torch.randn(B, T, C, d), torch.randn(1, T, d) * 0.02, torch.randn(1, C, d) * 0.02]
    return dict(block=block, size="B 4, T 16, C 16, d 128, H 8, H_kv 4", module=m, inputs=inputs,
                forward=lambda mod, xs: mod(*xs))


def cases():
    return [_mvpa_case("MVPA"), _mvpa_case("MVPFormer block")]


def _fill(shape, c0, a, f, g, p):
    n = math.prod(shape)
    j = torch.arange(n, dtype=torch.float64)
    return (c0 + a * torch.sin(f * j + g * j * j + p)).float().reshape(shape)


if __name__ == "__main__":
    fills = {
        "ln_1.weight": ([20], 1, 0.15, 0.4495, 0.00249, 1.9478),
        "attn.attn_bias": ([30], 0, 0.3, 0.1248, 0.000733, 0.2642),
        "attn.q_attn.weight": ([20, 20], 0, 0.2683, 0.6502, 0.001975, 4.8638),
        "attn.c_attn.weight": ([20, 20], 0, 0.2683, 0.3255, 0.000218, 3.1802),
        "attn.position_net.weight": ([10, 20], 0, 0.2683, 0.8508, 0.001461, 1.4967),
        "attn.channel_net.weight": ([10, 20], 0, 0.2683, 0.5261, 0.002703, 6.0963),
        "attn.c_proj.weight": ([20, 20], 0, 0.2683, 0.2015, 0.000946, 4.4127),
        "ln_2.weight": ([20], 1, 0.15, 0.7268, 0.002188, 2.7291),
        "mlp.gate_proj.weight": ([41, 20], 0, 0.2683, 0.4021, 0.000431, 1.0455),
        "mlp.up_proj.weight": ([41, 20], 0, 0.2683, 0.0774, 0.001674, 5.6451),
        "mlp.down_proj.weight": ([20, 41], 0, 0.1874, 0.6028, 0.002916, 3.9616),
    }
    blk = MVPFormerBlock(20, 4, 2, 41).eval()
    sd = {k: _fill(*v) for k, v in fills.items()}
    blk.load_state_dict(sd)
    x = _fill([2, 15, 3, 20], 0.1, 1.3, 0.31, 0.00071, 0.9)
    pos = _fill([1, 15, 20], 0, 0.6, 0.53, 0.0013, 2.2)
    chan = _fill([1, 3, 20], 0, 0.7, 0.67, 0.0029, 0.35)
    with torch.no_grad():
        out, w = blk.attn(x, pos, chan, return_probs=True)
        y = blk(x, pos, chan)
    gold_out = {
        (0, 0, 0): [0.29262173, 0.18301308, -0.050981697, -0.03481555, 0.20918128, 0.22422969, -0.25577205, 0.2224614, -0.13680172, -0.16288567, -0.037698746, -0.021438718, -0.19901919, -0.31779146, 0.29535317, -0.20650065, 0.28330535, -0.18222538, -0.16826716, -0.12736563],
        (-1, -1, -1): [0.032233339, 0.026718214, 0.0057713203, 0.010314206, 0.043782704, 0.030931674, -0.042878762, 0.033410221, -0.024916166, 0.0023075531, 0.0087908162, 0.00083669322, -0.0079805814, -0.0056880163, 0.029433848, -0.037426643, 0.049518533, -0.022745689, -0.056893118, -0.049163703],
    }
    dev = max((out[k] - torch.tensor(v)).abs().max().item() for k, v in gold_out.items())
    print("attention: sum", out.double().sum().item(), "(golden -5.20562); sum|.|", out.double().abs().sum().item(),
          "(213.7142); max abs dev", dev)
    wd = (w[0, 0, 33, :6] - torch.tensor([0.033019789, 0.033138879, 0.017019738, 0.03201424, 0.045434408, 0.014130566])).abs().max().item()
    ks = torch.arange(45, dtype=torch.float64)
    print("probabilities: checksum", (w.double() * ks).sum().item(), "(golden 3847.599); max abs dev", wd)
    gy = [0.87643826, 0.046849869, -0.59399849, 1.4529432, -1.1348629, 1.0610745, -0.11277695, -0.40977633, 1.2437738, -1.2513844, 1.0458821, -0.18507715, -0.39269844, 1.1580551, -1.0862155, 1.2170595, -0.44848618, -0.26278955, 0.88730025, -1.1981344]
    print("block: sum", y.double().sum().item(), "(golden 208.09782); max abs dev y[-1,11,0]",
          (y[-1, 11, 0] - torch.tensor(gy)).abs().max().item())
