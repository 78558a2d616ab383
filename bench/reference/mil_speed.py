"""Speed and memory of gated-attention MIL in PyTorch, the reference for `mil-speed` (written from spec acmil.md §3/§4
through bench/reference/modules/mil.py). One phase per process, so each peak RSS counts that phase only, as on the .NET
side (which also runs each phase in a fresh process):
  --phase train-memory  a cohort of bags held as tensors (sizes given), one bag per step, AdamW, cross-entropy;
  --phase train-files   the same cohort read from one CLAM-style .h5 file per bag at each step (h5py, randperm order,
                        as a CLAM dataset reads slides);
  --phase forward       the eval forward of one bag of N instances (a ready tensor);
  --phase h5            read a bag from an .h5 file (h5py → torch.from_numpy) + the eval forward.
Prints RESULT {json}. Run with OPENBLAS_NUM_THREADS=1 (and the right OPENBLAS_CORETYPE), as bench/PythonReference does.
"""
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


def read_h5(path):
    import h5py
    with h5py.File(path, "r") as f:
        return torch.from_numpy(f["features"][:])


def train(a, model, bag, count):
    """Epochs of one bag per step in a random order; bag(i) gives bag i as an [N, D] tensor."""
    labels = [torch.tensor([i % 2]) for i in range(count)]
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
    epoch_seconds = []
    for _ in range(a.epochs):
        model.train()
        start = time.perf_counter()
        for i in torch.randperm(count).tolist():
            logits, _, _ = model(bag(i).unsqueeze(0))
            loss = torch.nn.functional.cross_entropy(logits, labels[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        epoch_seconds.append(time.perf_counter() - start)
    return {"bags_per_second": count / epoch_seconds[-1], "epoch_seconds": epoch_seconds}


def timed_forward(model, make_input):
    """Best of 3 after a warm-up; make_input() is timed with the forward (the .h5 route reads inside the timing)."""
    times = []
    with torch.inference_mode():
        for _ in range(4):
            start = time.perf_counter()
            x = make_input()
            model(x.unsqueeze(0))
            times.append(time.perf_counter() - start)
            del x
    return min(times[1:])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--phase", required=True, choices=["train-memory", "train-files", "forward", "h5"])
    p.add_argument("--sizes", default="", help="train-memory: comma-separated bag sizes of the cohort")
    p.add_argument("--files", default="", help="train-files: a text file listing the cohort's .h5 files, one a line")
    p.add_argument("--features", type=int, default=1024)
    p.add_argument("--inner", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=100000, help="forward: the bag's instances")
    p.add_argument("--h5", default="", help="h5: a CLAM-style .h5 feature file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = GatedAbmil(a.features, a.inner, 2)
    result = {"phase": a.phase, "torch": torch.__version__, "threads": a.threads}
    if a.phase == "train-memory":
        bags = [torch.randn(int(n), a.features) for n in a.sizes.split(",")]
        result.update(train(a, model, lambda i: bags[i], len(bags)))
    elif a.phase == "train-files":
        with open(a.files) as f:
            paths = [line.strip() for line in f if line.strip()]
        result.update(train(a, model, lambda i: read_h5(paths[i]), len(paths)))
    elif a.phase == "forward":
        model.eval()
        x = torch.randn(a.n, a.features)
        result["seconds"] = timed_forward(model, lambda: x)
    else:
        model.eval()
        result["seconds"] = timed_forward(model, lambda: read_h5(a.h5))
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
