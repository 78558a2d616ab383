"""Independent PyTorch reference for the image classifier benchmark (`cifar` command): MobileNetV2 with the CIFAR
stem and ELA-L / ULSAM / no attention, and the CIFAR ResNet-18 with ELA-B, written from shared/spec/{ela,ulsam}.md
and our module docs (src/Modules/Vision/*.md: same state-dict names, same initialisation), never from the papers'
repositories; trained with the recipe the C# side uses (SGD + Nesterov, warm-up + cosine per step, L2 weight decay
except norms and biases, random crop 4 + flip, cross-entropy).

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/reference/models/cifar_cnn.py --data DIR --model mbv2-ela ...

DIR holds train.u8 / test.u8 (uint8 [N, 3, 32, 32], CHW, R G B) and train.labels / test.labels (uint8), written by the
benchmark from the JPEGs with ML.NET's ExtractPixels, so both sides see identical pixels. Prints `RESULT {json}`.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "modules"))
from ela import ELA, InvertedResidual, make_divisible, _conv_bn_relu6 as conv_bn_relu6  # noqa: E402
from ulsam import Ulsam  # noqa: E402

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
TABLE = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    """ela.MobileNetV2 plus the ULSAM replacement and the reference initialisation (the training benchmark needs both):
    torchvision's MobileNetV2 in the flat mbv2_ela72 layout; cifar_stem: stride 1 in the stem and in stage 1.
    attention: 'ela' (ELA-L in every t != 1 block) | 'ulsam' (features.12 replaced by ULSAM g) | None."""

    def __init__(self, classes, width=1.0, dropout=0.1, attention=None, subspaces=4, cifar_stem=True, in_channels=3):
        super().__init__()
        divisor = 4 if width == 0.1 else 8
        channels = make_divisible(32 * width, divisor)
        layers = [conv_bn_relu6(in_channels, channels, 3, 1 if cifar_stem else 2)]
        own = []
        for stage, (t, c, n, s) in enumerate(TABLE):
            if cifar_stem and stage == 1:
                s = 1
            out = make_divisible(c * width, divisor)
            for i in range(n):
                stride = s if i == 0 else 1
                if attention == "ulsam" and len(layers) == 12:
                    assert stride == 1 and channels == out
                    layers.append(Ulsam(out, subspaces))
                else:
                    block = InvertedResidual(channels, out, stride, t,
                                             (lambda e: ELA(e, "L")) if attention == "ela" else None)
                    own.append(block)
                    layers.append(block)
                channels = out
        self.features = nn.Sequential(*layers)
        self.conv = conv_bn_relu6(channels, 1280 if width <= 1 else make_divisible(1280 * width, divisor), 1, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.conv[0].out_channels, classes))
        # Reference init on the backbone's own layers only (attention modules keep PyTorch's defaults).
        mods = [layers[0], self.conv, self.classifier]
        for block in own:
            mods += [m for m in block.conv if not isinstance(m, ELA)]
        for root in mods:
            for m in root.modules() if isinstance(root, nn.Module) else [root]:
                if isinstance(m, ELA):
                    continue
                if isinstance(m, nn.Conv2d):
                    n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                    nn.init.normal_(m.weight, 0, math.sqrt(2.0 / n))
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.conv(self.features(x))
        return self.classifier(x.mean((2, 3)))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, then out + A(out) (ELA), + shortcut, ReLU."""

    def __init__(self, cin, cout, stride, attention):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.attention = attention(cout) if attention else None
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.attention is not None:
            out = out + self.attention(out)
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, classes, attention=None, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        att = (lambda c: ELA(c, "B")) if attention == "ela" else None
        cin, stages = 64, []
        for i, (c, s) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            stages.append(nn.Sequential(BasicBlock(cin, c, s, att), BasicBlock(c, c, 1, att)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(512, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # ELA's conv is a Conv1d: keeps PyTorch's default
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


def build(name, classes, width, subspaces, c):
    return {
        "mbv2": lambda: MobileNetV2(classes, width, attention=None, in_channels=c),
        "mbv2-ela": lambda: MobileNetV2(classes, width, attention="ela", in_channels=c),
        "mbv2-ulsam": lambda: MobileNetV2(classes, width, attention="ulsam", subspaces=subspaces, in_channels=c),
        "resnet18": lambda: ResNet18(classes, in_channels=c),
        "resnet18-ela": lambda: ResNet18(classes, attention="ela", in_channels=c),
    }[name]()


def load(data, split, c, size):
    x = np.fromfile(os.path.join(data, f"{split}.u8"), dtype=np.uint8)
    y = np.fromfile(os.path.join(data, f"{split}.labels"), dtype=np.uint8).astype(np.int64)
    return torch.from_numpy(x.reshape(len(y), c, size, size).copy()), torch.from_numpy(y)


def normaliser(c):
    mean = torch.tensor(MEAN if c == 3 else (0.5,)).view(1, c, 1, 1)
    std = torch.tensor(STD if c == 3 else (0.5,)).view(1, c, 1, 1)
    return lambda x_u8: (x_u8.float() / 255 - mean) / std


def augment(x, generator, pad=4):
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    ii = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    jj = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    crops = torch.stack([padded[k, :, ii[k]:ii[k] + h, jj[k]:jj[k] + w] for k in range(n)])
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), crops.flip(3), crops)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--subspaces", type=int, default=4)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--size", type=int, default=32)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    xtr, ytr = load(a.data, "train", a.channels, a.size)
    xte, yte = load(a.data, "test", a.channels, a.size)
    normalise = normaliser(a.channels)
    model = build(a.model, a.classes, a.width, a.subspaces, a.channels)
    decay, no_decay = [], []
    for _, q in model.named_parameters():
        (no_decay if q.dim() <= 1 else decay).append(q)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=a.momentum, nesterov=True)
    n = len(ytr)
    steps_per_epoch = n // a.batch if n > a.batch else 1
    total, warmup = steps_per_epoch * a.epochs, steps_per_epoch * a.warmup_epochs
    step, start = 0, time.perf_counter()
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        for b in range(steps_per_epoch):
            lr = a.lr * (step + 1) / warmup if step < warmup else \
                a.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[b * a.batch:(b + 1) * a.batch]
            x = normalise(augment(xtr[idx].float(), gen))
            loss = F.cross_entropy(model(x), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}", file=sys.stderr, flush=True)
    train_seconds = time.perf_counter() - start
    model.eval()
    correct, start = 0, time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(yte), 64):
            correct += (model(normalise(xte[b:b + 64])).argmax(1) == yte[b:b + 64]).sum().item()
    score_seconds = time.perf_counter() - start
    # Batch-1 latency (median of 200 single images, after 20 warm-up calls), the PredictionEngine's counterpart.
    times = []
    with torch.inference_mode():
        for k in range(220):
            t0 = time.perf_counter()
            model(normalise(xte[k % len(yte):k % len(yte) + 1]))
            if k >= 20:
                times.append(time.perf_counter() - t0)
    latency_ms = 1000 * sorted(times)[len(times) // 2]
    print("RESULT " + json.dumps({
        "accuracy": correct / len(yte), "train_seconds": train_seconds,
        "train_images_per_second": steps_per_epoch * a.batch * a.epochs / train_seconds,
        "score_images_per_second": len(yte) / score_seconds, "latency_ms": latency_ms,
        "parameters": sum(q.numel() for q in model.parameters()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
