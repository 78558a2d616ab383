#!/usr/bin/env python3
"""Same-run PyTorch speed reference for our CRIB forecaster (the `crib-speed` benchmark).

Written from the project spec (shared/spec/crib.md sections 3 to 6), not from the paper's repository. The network is
our independent module in bench/reference/modules/crib.py; this script adds what the benchmark needs around it:

* the training objective of our CribTrainer.Loss: the forecast's MAE over the observed targets only
  (sum |y_hat - y| * mask / max(sum mask, 1)) + consistency_weight * mean (e1 - e2)^2 + kl_weight * KL (a sum),
  with prediction_weight on the first term (spec section 5, with the project's masked forecast error);
* Adam (weight decay 0) with the same learning rate, batch size and drop-last rule as our training loop;
* timings: training seconds per epoch (the training loop only, batch gathering included), scoring throughput at
  batch 32 under eval + inference_mode, batch-1 latency (median of many calls), peak RSS (ru_maxrss).

Inputs are the exact windows our side trains and scores on: the C# benchmark writes the training and test series,
already scaled as our model scales them (CRIB protocol's global scaler, then the model's per-variate z-score), as
float32 rows with NaN at the missing entries. Windows start at every row; a window reads the zero-filled lookback and
its observed mask, as CribNetwork does.

Prints one final line ``RESULT {json}``. Run with OPENBLAS_NUM_THREADS=1, e.g.
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/reference/crib_reference.py --series FILE \
      --train-rows 347 --test-rows 3521 --variates 7 --lookback 24 --horizon 24 --epochs 2
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "modules"))
from crib import Crib, from_series  # noqa: E402  (the module directory is added above)

WARMUP_BATCHES_32, WARMUP_CALLS_1 = 5, 50  # as the C# side


class Windows:
    """Sliding windows over one scaled series: zero-filled values and the observed mask, gathered per batch by index."""

    def __init__(self, rows, lookback, horizon):
        observed = ~np.isnan(rows)
        self.values = torch.from_numpy(np.where(observed, rows, 0.0).astype(np.float32))
        self.observed = torch.from_numpy(observed.astype(np.float32))
        self.lookback_offsets = torch.arange(lookback)
        self.horizon_offsets = torch.arange(lookback, lookback + horizon)

    def inputs(self, starts):
        index = starts[:, None] + self.lookback_offsets[None, :]
        return self.values[index], self.observed[index]

    def targets(self, starts):
        index = starts[:, None] + self.horizon_offsets[None, :]
        return self.values[index], self.observed[index]


def masked_mae(forecast, target, mask):
    return ((forecast - target).abs() * mask).sum() / mask.sum().clamp_min(1.0)


def train_epoch(model, optimizer, windows, count, args, generator):
    """One epoch in our loop's order: shuffle, drop the last partial batch (unless it is the only one), one step
    per batch."""
    model.train()
    start = time.perf_counter()
    order = torch.randperm(count, generator=generator)
    batches = count // args.batch_size if count > args.batch_size else 1
    loss_sum = 0.0
    for b in range(batches):
        starts = order[b * args.batch_size:(b + 1) * args.batch_size]
        x, mask = windows.inputs(starts)
        y, target_mask = windows.targets(starts)
        optimizer.zero_grad(set_to_none=True)
        out = model(from_series(x, mask, args.patch_length), return_all=True)
        loss = (args.prediction_weight * masked_mae(out["pred"], y, target_mask)
                + args.consistency_weight * ((out["e1"] - out["e2"]) ** 2).mean()
                + args.kl_weight * out["kl"])
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(starts)  # our loop reads each batch's loss too
    windows = batches * min(args.batch_size, count)
    return time.perf_counter() - start, windows, loss_sum / windows


def score_batch32(model, windows, count, patch_length):
    """Windows/s over all scoring windows in batches of 32, built in advance, after a warm-up."""
    model.eval()
    batches = [windows.inputs(torch.arange(s, min(s + 32, count))) for s in range(0, count, 32)]
    with torch.inference_mode():
        for x, mask in batches[:WARMUP_BATCHES_32]:
            model(from_series(x, mask, patch_length))
        start = time.perf_counter()
        for x, mask in batches:
            model(from_series(x, mask, patch_length))
        seconds = time.perf_counter() - start
    return count / seconds


def score_batch1(model, windows, count, patch_length):
    """Median milliseconds per single-window forward and windows/s over them, after a warm-up."""
    model.eval()
    singles = [windows.inputs(torch.tensor([s])) for s in range(count)]
    latencies = []
    with torch.inference_mode():
        for x, mask in singles[:WARMUP_CALLS_1]:
            model(from_series(x, mask, patch_length))
        start = time.perf_counter()
        for x, mask in singles:
            t0 = time.perf_counter()
            model(from_series(x, mask, patch_length))
            latencies.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - start
    return 1000.0 * statistics.median(latencies), count / seconds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", required=True, help="float32 rows: the training series, then the test series")
    p.add_argument("--train-rows", type=int, required=True)
    p.add_argument("--test-rows", type=int, required=True)
    p.add_argument("--variates", type=int, required=True)
    p.add_argument("--lookback", type=int, default=24)
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--patch-length", type=int, default=8)
    p.add_argument("--model-width", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--prediction-weight", type=float, default=1.0)
    p.add_argument("--consistency-weight", type=float, default=1.0)
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--b1-windows", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    n = args.variates
    rows = np.fromfile(args.series, dtype="<f4")
    if rows.size != (args.train_rows + args.test_rows) * n:
        raise SystemExit("%s holds %d values, expected (%d + %d) x %d"
                         % (args.series, rows.size, args.train_rows, args.test_rows, n))
    rows = rows.reshape(-1, n)
    train = Windows(rows[:args.train_rows], args.lookback, args.horizon)
    test = Windows(rows[args.train_rows:], args.lookback, 0)
    train_windows = args.train_rows - args.lookback - args.horizon + 1
    test_windows = args.test_rows - args.lookback + 1  # scoring windows need no target, as CreateWindows(..., false)

    model = Crib(args.lookback, args.horizon, patch_len=args.patch_length, d=args.model_width, heads=args.heads,
                 layers=args.layers, dropout=args.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    epoch_seconds, epoch_losses, windows_per_epoch = [], [], 0
    for epoch in range(args.epochs):
        seconds, windows_per_epoch, loss = train_epoch(model, optimizer, train, train_windows, args, generator)
        epoch_seconds.append(seconds)
        epoch_losses.append(loss)
        print("epoch %d: %.2f s, loss %.4f" % (epoch + 1, seconds, loss), file=sys.stderr, flush=True)

    b32 = score_batch32(model, test, test_windows, args.patch_length)
    b1_count = min(args.b1_windows, test_windows)
    latency_ms, b1 = score_batch1(model, test, b1_count, args.patch_length)

    result = {
        "impl": "pytorch-reference",
        "params": sum(p.numel() for p in model.parameters()),
        "train_windows": train_windows, "windows_per_epoch": windows_per_epoch, "test_windows": test_windows,
        "epoch_seconds": [round(s, 4) for s in epoch_seconds],
        "epoch_losses": [round(l, 5) for l in epoch_losses],
        "seconds_per_epoch": float(np.mean(epoch_seconds)),
        "train_windows_per_s": windows_per_epoch / float(np.mean(epoch_seconds)),
        "score_windows_per_s_b32": b32,
        "score_windows_per_s_b1": b1, "b1_windows": b1_count,
        "latency_ms_b1_median": latency_ms,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
