"""Speed and memory of gated-attention MIL in PyTorch, the reference for `mil-speed` (written from spec acmil.md §3/§4
through bench/reference/modules/mil.py). Same shapes as the .NET side: a cohort of bags (sizes given), one bag per
step, AdamW, softmax cross-entropy; then eval forwards of single bags of N instances. Prints RESULT {json}.
Run with OPENBLAS_NUM_THREADS=1 (and the right OPENBLAS_CORETYPE), as bench/PythonReference does."""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "modules"))
from mil import GatedAbmil  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", required=True, help="comma-separated bag sizes of the training cohort")
    p.add_argument("--features", type=int, default=1024)
    p.add_argument("--inner", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--forward", default="10000,50000,100000")
    p.add_argument("--h5", default="", help="a CLAM-style .h5 feature file: time reading it (h5py) + the forward")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    sizes = [int(s) for s in a.sizes.split(",")]
    bags = [torch.randn(n, a.features) for n in sizes]
    labels = [torch.tensor([i % 2]) for i in range(len(sizes))]
    model = GatedAbmil(a.features, a.inner, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
    epoch_seconds = []
    for _ in range(a.epochs):
        model.train()
        start = time.perf_counter()
        for i in torch.randperm(len(bags)).tolist():
            logits, _, _ = model(bags[i].unsqueeze(0))
            loss = torch.nn.functional.cross_entropy(logits, labels[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        epoch_seconds.append(time.perf_counter() - start)
    train_rss = peak_rss_mb()
    del bags
    model.eval()
    forward = {}
    with torch.inference_mode():
        for n in [int(s) for s in a.forward.split(",")]:
            x = torch.randn(1, n, a.features)
            model(x)  # warm-up
            times = []
            for _ in range(3):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
            forward[str(n)] = {"seconds": min(times), "peak_rss_mb": peak_rss_mb()}
            del x
        h5 = None
        if a.h5:
            import h5py
            times = []
            for _ in range(4):
                start = time.perf_counter()
                with h5py.File(a.h5, "r") as f:
                    x = torch.from_numpy(f["features"][:])
                model(x.unsqueeze(0))
                times.append(time.perf_counter() - start)
                del x
            h5 = {"seconds": min(times[1:]), "peak_rss_mb": peak_rss_mb()}
    print("RESULT " + json.dumps({
        "bags_per_second": len(sizes) / epoch_seconds[-1],
        "epoch_seconds": epoch_seconds,
        "train_peak_rss_mb": train_rss,
        "forward": forward,
        "h5": h5,
        "torch": torch.__version__,
        "threads": a.threads,
    }))


if __name__ == "__main__":
    main()
