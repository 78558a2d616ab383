#!/usr/bin/env python3
"""Independent PyTorch reference implementation of iTransformer (Liu et al., ICLR 2024).

Written from the project spec (shared/spec/itransformer.md sections 3, 6, 7 and
shared/spec/datasets.md section 1.1), not copied from any paper repository. It is used by
the C# benchmark as a same-run speed/accuracy baseline.

Prints exactly one line starting with ``RESULT `` followed by a JSON object (last line of stdout).

Run with OPENBLAS_NUM_THREADS=1, e.g.
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/reference/itransformer_reference.py \
      --data ETTh1 --horizon 96 --d-model 256 --d-ff 256 --epochs 10
"""

import argparse
import datetime as _dt
import gzip
import json
import math
import os
import random
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LOOKBACK = 96

# ETT borders (spec §6 / datasets.md §1.1): train end, val end, test end for hourly data.
ETT_HOURLY_BORDERS = (8640, 11520, 14400)


# --------------------------------------------------------------------------------------------
# Model (spec §3)
# --------------------------------------------------------------------------------------------

class InvertedAttention(nn.Module):
    """Full multi-head self-attention across tokens (variates), no mask."""

    def __init__(self, d_model, n_heads, dropout):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError("d_model must be divisible by heads")
        self.h = n_heads
        self.dh = d_model // n_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)
        self.attn_drop = nn.Dropout(dropout)

    def forward(self, x):  # x: [B, T, D]
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.h, self.dh).transpose(1, 2)  # [B, H, T, dh]
        k = self.k(x).view(b, t, self.h, self.dh).transpose(1, 2)
        v = self.v(x).view(b, t, self.h, self.dh).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.dh))
        a = self.attn_drop(torch.softmax(scores, dim=-1))
        out = torch.matmul(a, v).transpose(1, 2).reshape(b, t, d)
        return self.o(out)


class EncoderLayer(nn.Module):
    """Post-norm layer: x = LN1(x + Drop(Attn(x))); y = Drop(W2 Drop(GELU(W1 x))); LN2(x + y)."""

    def __init__(self, d_model, d_ff, n_heads, dropout):
        super().__init__()
        self.attn = InvertedAttention(d_model, n_heads, dropout)
        # Kernel-1 Conv1d in the official code == a per-token Linear; we use Linear.
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.ln1 = nn.LayerNorm(d_model, eps=1e-5)
        self.ln2 = nn.LayerNorm(d_model, eps=1e-5)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = self.ln1(x + self.drop(self.attn(x)))
        y = self.drop(F.gelu(self.ff1(x)))  # exact (erf) GELU
        y = self.drop(self.ff2(y))
        return self.ln2(x + y)


class ITransformer(nn.Module):
    def __init__(self, seq_len, pred_len, d_model, d_ff, n_heads, e_layers, dropout=0.1, use_norm=True):
        super().__init__()
        self.pred_len = pred_len
        self.use_norm = use_norm
        self.embed = nn.Linear(seq_len, d_model)
        self.embed_drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            [EncoderLayer(d_model, d_ff, n_heads, dropout) for _ in range(e_layers)])
        self.final_norm = nn.LayerNorm(d_model, eps=1e-5)
        self.projector = nn.Linear(d_model, pred_len)

    def forward(self, x, x_mark=None):
        # x: [B, L, N]; x_mark: [B, L, M] or None
        n = x.shape[2]
        if self.use_norm:
            mu = x.mean(dim=1, keepdim=True).detach()          # no gradient through mu
            xc = x - mu
            sigma = torch.sqrt(torch.mean(xc * xc, dim=1, keepdim=True) + 1e-5)  # biased var, grad flows
            x = xc / sigma
        tokens = x.transpose(1, 2)                               # [B, N, L]
        if x_mark is not None:
            tokens = torch.cat([tokens, x_mark.transpose(1, 2)], dim=1)  # covariates not normalised
        h = self.embed_drop(self.embed(tokens))                  # [B, N', D]
        for layer in self.layers:
            h = layer(h)
        h = self.final_norm(h)
        y = self.projector(h).transpose(1, 2)[:, :, :n]          # [B, S, N]
        if self.use_norm:
            y = y * sigma + mu
        return y


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# Data (spec §6, datasets.md §1.1)
# --------------------------------------------------------------------------------------------

def time_features_h(dates):
    """timeF, freq 'h': hour/23-0.5, weekday/6-0.5, (day-1)/30-0.5, (dayofyear-1)/365-0.5."""
    out = np.empty((len(dates), 4), dtype=np.float64)
    for i, d in enumerate(dates):
        out[i, 0] = d.hour / 23.0 - 0.5
        out[i, 1] = d.weekday() / 6.0 - 0.5
        out[i, 2] = (d.day - 1) / 30.0 - 0.5
        out[i, 3] = (d.timetuple().tm_yday - 1) / 365.0 - 0.5
    return out.astype(np.float32)


def load_ett(data_dir, name):
    path = os.path.join(data_dir, name + ".csv.gz")
    dates, rows = [], []
    with gzip.open(path, "rt") as f:
        header = f.readline().strip().split(",")
        if header[0] != "date" or len(header) != 8:
            raise ValueError("unexpected ETT header: %r" % header)
        for line in f:
            line = line.strip()
            if not line:
                continue
            parts = line.split(",")
            dates.append(_dt.datetime.strptime(parts[0], "%Y-%m-%d %H:%M:%S"))
            rows.append([float(v) for v in parts[1:]])
    return dates, np.asarray(rows, dtype=np.float64), header[1:]


class EttSplits:
    def __init__(self, data_dir, name, seq_len, pred_len):
        dates, values, cols = load_ett(data_dir, name)
        mult = 4 if name.startswith("ETTm") else 1
        tr, va, te = (b * mult for b in ETT_HOURLY_BORDERS)
        self.borders = {"train": (0, tr), "val": (tr - seq_len, va), "test": (va - seq_len, te)}
        self.mean = values[:tr].mean(axis=0)
        self.std = values[:tr].std(axis=0, ddof=0)
        scaled = (values - self.mean) / self.std
        self.data = torch.from_numpy(scaled.astype(np.float32))
        self.marks = torch.from_numpy(time_features_h(dates))  # always freq 'h' (spec §3, parity)
        self.cols = cols
        self.L, self.S = seq_len, pred_len
        self.ar_x = torch.arange(seq_len)
        self.ar_y = torch.arange(seq_len, seq_len + pred_len)

    def starts(self, split):
        lo, hi = self.borders[split]
        count = (hi - lo) - self.L - self.S + 1
        return torch.arange(lo, lo + count)

    def batch(self, starts, with_marks=True):
        ix = starts[:, None] + self.ar_x[None, :]
        iy = starts[:, None] + self.ar_y[None, :]
        x = self.data[ix]
        y = self.data[iy]
        m = self.marks[ix] if with_marks else None
        return x, m, y


def batches(starts, batch_size, shuffle, drop_last, gen=None):
    if shuffle:
        starts = starts[torch.randperm(len(starts), generator=gen)]
    n = len(starts)
    end = (n // batch_size) * batch_size if drop_last else n
    for i in range(0, end, batch_size):
        yield starts[i:i + batch_size]


# --------------------------------------------------------------------------------------------
# Training / evaluation (spec §7)
# --------------------------------------------------------------------------------------------

def train_epoch(model, ds, opt, args, gen, use_marks):
    model.train()
    n_windows = 0
    t0 = time.perf_counter()
    for bi, st in enumerate(batches(ds.starts("train"), args.batch_size, True, True, gen)):
        if args.max_train_batches is not None and bi >= args.max_train_batches:
            break
        x, m, y = ds.batch(st, use_marks)
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x, m), y)
        loss.backward()
        opt.step()
        n_windows += len(st)
    return time.perf_counter() - t0, n_windows


def val_loss(model, ds, args, gen, use_marks):
    """Mean of per-batch MSEs over a shuffled, drop_last loader (spec §7)."""
    model.eval()
    losses = []
    with torch.inference_mode():
        for st in batches(ds.starts("val"), args.batch_size, True, True, gen):
            x, m, y = ds.batch(st, use_marks)
            losses.append(F.mse_loss(model(x, m), y).item())
    return float(np.mean(losses))


def test_metrics(model, ds, use_marks, batch_size=256):
    """Global MSE/MAE over all test windows x S x N, in order, nothing dropped."""
    model.eval()
    se = ae = 0.0
    count = 0
    with torch.inference_mode():
        for st in batches(ds.starts("test"), batch_size, False, False):
            x, m, y = ds.batch(st, use_marks)
            d = (model(x, m) - y).double()
            se += float((d * d).sum())
            ae += float(d.abs().sum())
            count += d.numel()
    return se / count, ae / count


def score_throughput(model, ds, use_marks, batch_size, min_windows, warmup_batches):
    """Windows/s for eval + inference_mode over the test windows (data pre-materialised)."""
    model.eval()
    starts = ds.starts("test")
    if batch_size == 1:
        starts = starts[:max(min_windows, min(len(starts), 1000))]
    pre = [ds.batch(st, use_marks)[:2] for st in batches(starts, batch_size, False, False)]
    with torch.inference_mode():
        for x, m in pre[:warmup_batches]:
            model(x, m)
        n = 0
        t0 = time.perf_counter()
        for x, m in pre:
            model(x, m)
            n += x.shape[0]
        dt = time.perf_counter() - t0
    return n / dt


# --------------------------------------------------------------------------------------------
# Golden-value self-test (spec §9)
# --------------------------------------------------------------------------------------------

def self_test():
    torch.manual_seed(0)
    model = ITransformer(seq_len=8, pred_len=4, d_model=16, d_ff=32, n_heads=2, e_layers=2)
    # Parameter order of the official state dict (spec §9), mapped to our modules.
    order = [model.embed.weight, model.embed.bias]
    ln_weights = set()
    for layer in model.layers:
        order += [layer.attn.q.weight, layer.attn.q.bias, layer.attn.k.weight, layer.attn.k.bias,
                  layer.attn.v.weight, layer.attn.v.bias, layer.attn.o.weight, layer.attn.o.bias,
                  layer.ff1.weight, layer.ff1.bias, layer.ff2.weight, layer.ff2.bias,
                  layer.ln1.weight, layer.ln1.bias, layer.ln2.weight, layer.ln2.bias]
        ln_weights |= {id(layer.ln1.weight), id(layer.ln2.weight)}
    order += [model.final_norm.weight, model.final_norm.bias, model.projector.weight, model.projector.bias]
    ln_weights.add(id(model.final_norm.weight))
    assert len(order) == 38
    with torch.no_grad():
        for k, p in enumerate(order):
            # float32 index/argument, as the reference run did (float64 args differ by ~2e-6 at the output)
            j = torch.arange(p.numel(), dtype=torch.float32)
            if p.dim() >= 2:
                v = torch.sin(0.37 * j + 0.5 * k) / math.sqrt(p.shape[1])
            elif id(p) in ln_weights:
                v = 1 + 0.1 * torch.cos(0.23 * j + 0.5 * k)
            else:
                v = 0.1 * torch.cos(0.23 * j + 0.5 * k)
            p.copy_(v.view(p.shape).to(p.dtype))
    model.eval()
    b, t, n, mm = torch.meshgrid(torch.arange(2.), torch.arange(8.), torch.arange(3.), torch.arange(2.),
                                 indexing="ij")
    x = (torch.sin(0.5 * t + 1.3 * n + 0.7 * b) + 0.2 * n)[..., 0].float()
    xm = (0.1 * torch.cos(0.9 * t + mm) - 0.05 * b)[:, :, 0, :].float()
    cases = {
        "A": (True, xm, -0.4999611, 4.9170527, [0.3742911, 0.2820797, 0.2155269, 0.1833186],
              [-0.0893316, -0.4568904, -0.3194826]),
        "B": (True, None, 0.8718402, 5.0245023, [0.4256201, 0.3234608, 0.2415615, 0.1906103],
              [-0.0432011, -0.4078536, -0.2866793]),
        "C": (False, xm, -10.2786541, 10.2786541, [-0.5489819, -0.5564967, -0.4836856, -0.3400415],
              [-0.6018708, -0.6010061, -0.6077781]),
    }
    worst = 0.0
    ok = True
    for name, (norm, mk, s, sa, col0, row) in cases.items():
        model.use_norm = norm
        with torch.no_grad():
            y = model(x, mk)
        errs = [abs(float(y.sum()) - s), abs(float(y.abs().sum()) - sa)]
        el = [float((y[0, :, 0] - torch.tensor(col0)).abs().max()),
              float((y[1, 3, :] - torch.tensor(row)).abs().max())]
        case_ok = max(errs) <= 1e-4 and max(el) <= 1e-5
        ok &= case_ok
        worst = max(worst, max(el))
        print("self-test case %s: sum err %.2e, abs-sum err %.2e, element err %.2e -> %s"
              % (name, errs[0], errs[1], max(el), "ok" if case_ok else "FAIL"), file=sys.stderr)
    # Gradient check: mu detached, sigma not.
    model.use_norm = True
    xg = x.clone().requires_grad_(True)
    model(xg, xm).sum().backward()
    print("self-test gradient finite: %s" % bool(torch.isfinite(xg.grad).all()), file=sys.stderr)
    return ok, worst


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="ETTh1", choices=["ETTh1", "ETTh2", "ETTm1"])
    p.add_argument("--horizon", type=int, default=96)
    p.add_argument("--seq-len", type=int, default=LOOKBACK)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--d-ff", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--seed", type=int, default=2023)
    p.add_argument("--data-dir", default="/work/shared/data/timeseries")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-train-batches", type=int, default=None)
    p.add_argument("--speed-only", action="store_true",
                   help="1 training epoch (or --max-train-batches) + scoring timings, no accuracy loop")
    p.add_argument("--no-covariates", action="store_true", help="drop the 4 calendar tokens")
    p.add_argument("--no-norm", action="store_true", help="disable per-window instance normalisation")
    p.add_argument("--b1-windows", type=int, default=1000, help="windows timed at batch 1 (>= 500)")
    p.add_argument("--self-test", action="store_true", help="check the spec §9 golden values and exit")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    if args.self_test:
        ok, worst = self_test()
        print("RESULT " + json.dumps({"self_test": "pass" if ok else "fail", "max_element_err": worst}))
        sys.exit(0 if ok else 1)

    wall0 = time.perf_counter()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    use_marks = not args.no_covariates
    ds = EttSplits(args.data_dir, args.data, args.seq_len, args.horizon)
    model = ITransformer(args.seq_len, args.horizon, args.d_model, args.d_ff, args.heads, args.layers,
                         args.dropout, use_norm=not args.no_norm)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    max_epochs = 1 if args.speed_only else args.epochs
    train_secs, train_windows = [], 0
    val_hist = []
    best_val, best_state, best_epoch, bad = float("inf"), None, 0, 0
    epochs_run = 0
    for epoch in range(1, max_epochs + 1):
        for g in opt.param_groups:  # type1: epoch n uses lr0 * 0.5^max(0, n-2)
            g["lr"] = args.lr * 0.5 ** max(0, epoch - 2)
        secs, nw = train_epoch(model, ds, opt, args, gen, use_marks)
        train_secs.append(secs)
        train_windows += nw
        epochs_run = epoch
        if args.speed_only:
            break
        vl = val_loss(model, ds, args, gen, use_marks)
        val_hist.append(round(vl, 6))
        print("epoch %d: train %.2f s, lr %.3g, val %.6f" % (epoch, secs, opt.param_groups[0]["lr"], vl),
              file=sys.stderr, flush=True)
        if vl < best_val:
            best_val, best_epoch, bad = vl, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= args.patience:
                break

    test_mse = test_mae = None
    if not args.speed_only:
        model.load_state_dict(best_state)
        test_mse, test_mae = test_metrics(model, ds, use_marks)

    b32 = score_throughput(model, ds, use_marks, 32, 0, 5)
    b1 = score_throughput(model, ds, use_marks, 1, max(500, args.b1_windows), 50)

    result = {
        "impl": "pytorch-reference",
        "data": args.data, "horizon": args.horizon, "seq_len": args.seq_len,
        "d_model": args.d_model, "d_ff": args.d_ff, "layers": args.layers, "heads": args.heads,
        "lr": args.lr, "seed": args.seed, "covariates": use_marks, "speed_only": args.speed_only,
        "params": count_params(model),
        "windows": {s: int(len(ds.starts(s))) for s in ("train", "val", "test")},
        "test_mse": test_mse, "test_mae": test_mae,
        "epochs_run": epochs_run, "best_epoch": best_epoch if not args.speed_only else None,
        "val_losses": val_hist,
        "seconds_per_epoch": float(np.mean(train_secs)),
        "seconds_per_epoch_median": float(np.median(train_secs)),
        "epoch_seconds": [round(t, 3) for t in train_secs],
        "train_windows_per_s": train_windows / float(np.sum(train_secs)),
        "score_windows_per_s_b32": b32,
        "score_windows_per_s_b1": b1,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "total_seconds": time.perf_counter() - wall0,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
