#!/usr/bin/env python3
"""Times the independent PyTorch references of the attention blocks (bench/reference/modules/*.py).

For every case: forward (under no_grad) and forward + backward of the output's sum, median milliseconds per call
after a warm-up, with the same protocol as the C# `modules` benchmark. Prints one final line `RESULT {json}`.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/reference/modules_reference.py [--threads 2] [--min-seconds 1.0]
        [--blocks ELA-L,ULSAM ...]   # block-name prefixes to keep
        [--allocator steady|default] # steady (default): the same glibc mallopt settings as the C# side
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

import torch


def load_cases(folder):
    cases = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py") or name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location("bench_" + name[:-3], os.path.join(folder, name))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for case in module.cases():
            case["file"] = name
            cases.append(case)
    return cases


def timed(call, warmup, min_seconds, min_calls, max_calls):
    for _ in range(warmup):
        call()
    times = []
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), len(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--blocks", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allocator", choices=["steady", "default"], default="steady",
                        help="steady: glibc mmap threshold 32 MB, trim threshold 1 GB (as the C# side)")
    args = parser.parse_args()

    if args.allocator == "steady":
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        if libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) == 0 or libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 0:
            print("warning: mallopt refused the allocator settings", file=sys.stderr)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "modules")
    keep = [b for b in args.blocks.split(",") if b]
    cases = [c for c in load_cases(folder) if not keep or any(c["block"].startswith(k) for k in keep)]
    for case in cases:  # process warm-up, as the C# side: every case runs forward + backward once before any timing
        case["forward"](case["module"], case["inputs"]).sum().backward()
        case["module"].zero_grad(set_to_none=True)
    results = []
    for case in cases:
        module, inputs, forward = case["module"], case["inputs"], case["forward"]
        params = sum(p.numel() for p in module.parameters())

        def fwd():
            with torch.no_grad():
                forward(module, inputs)

        def fwd_bwd():
            out = forward(module, inputs)
            out.sum().backward()
            module.zero_grad(set_to_none=True)

        fwd_ms, fwd_n = timed(fwd, args.warmup, args.min_seconds, 5, 1000)
        bwd_ms, bwd_n = timed(fwd_bwd, args.warmup, args.min_seconds, 5, 1000)
        print(f"{case['block']:<28} {case['size']:<40} forward {fwd_ms:9.3f} ms ({fwd_n})  "
              f"forward+backward {bwd_ms:9.3f} ms ({bwd_n})", file=sys.stderr, flush=True)
        results.append({"block": case["block"], "size": case["size"], "params": params,
                        "forward_ms": fwd_ms, "forward_backward_ms": bwd_ms})
    print("RESULT " + json.dumps({"torch": torch.__version__, "threads": args.threads, "cases": results}))


if __name__ == "__main__":
    main()
