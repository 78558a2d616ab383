#!/usr/bin/env python3
"""Same-run PyTorch speed reference for the ResNet-18 tile featurizer (the `tile-features` benchmark).

Plain torch, no torchvision: a ResNet-18 written from its definition (He et al. 2016: 7x7/2 stem conv + BN + ReLU,
3x3/2 max-pool, four stages of basic blocks at 64/128/256/512 channels, 1x1/2 projection shortcuts, global average
pool), without the classifier: 224 x 224 RGB tiles in, 512 pooled features out. The blocks per stage follow the ONNX
graph the C# side runs (--blocks, counted from its Conv nodes). The weights are **random** (He init): Debian has no
`onnx` Python package to read the ONNX weights, and only the timing is compared, never the values.

Input: --tiles N random tiles in 0-255 (uint8 -> float, /255, ImageNet mean/std normalisation inside the timed loop,
as the featurizer normalises inside), scored at --batch under eval + inference_mode with --threads torch threads.
Prints one final line ``RESULT {json}`` (tiles_per_second, peak_rss_mb). Run with OPENBLAS_NUM_THREADS=1.
"""

import argparse
import json
import resource
import time

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.down is None else self.down(x)))


class ResNet18Features(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for i, (cout, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if j == 0 and i > 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiles", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", default="2,2,2,2")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    blocks = [int(b) for b in args.blocks.split(",")]
    model = ResNet18Features(blocks).eval()
    tiles = torch.randint(0, 256, (args.tiles, 3, 224, 224), dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def run(count):
        out = []
        for start in range(0, count, args.batch):
            x = tiles[start:min(count, start + args.batch)].float().div_(255)
            out.append(model((x - mean) / std))
        return torch.cat(out)

    with torch.inference_mode():
        run(min(args.batch, args.tiles))  # warm-up
        start = time.perf_counter()
        features = run(args.tiles)
        seconds = time.perf_counter() - start
    assert features.shape == (args.tiles, 512)
    result = {
        "tiles": args.tiles, "batch": args.batch, "threads": args.threads, "blocks": blocks,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tiles_per_second": args.tiles / seconds, "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch": torch.__version__, "weights": "random (He init)",
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
