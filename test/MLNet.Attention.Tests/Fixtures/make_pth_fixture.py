"""Writes the PyTorch checkpoint fixtures of the .pth import tests (CI reads the committed files, it needs no PyTorch).

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 test/MLNet.Attention.Tests/Fixtures/make_pth_fixture.py

Model: our own reference MobileNetV2 (bench/reference/modules/ela.py, same state-dict names as
MLNet.Attention.Vision.MobileNetV2) with ELA-B, width 0.25, the CIFAR stem and 10 classes, random weights and batch-norm
statistics from seed 2024, saved with a default torch.save (zip format). Features: the eval-mode pooled vector before
the classifier for four fixed 3x32x32 images of 0-255 pixels, normalised as the featurizer does (x * (1/255)/std -
mean/std, folded as in ImageClassifierNetwork).

Files:
  mbv2-elab-w025-cifar.pth          the state dict (about 1.1 MB)
  mbv2-elab-w025-cifar.features.txt "pixels" then 4 lines of 3072 integers (CHW), "features" then 4 lines of 1280 floats
  mbv2-stem-only.pth                only features.0.* of the same network (a checkpoint with missing keys)
  tiny-wrapped.pth                  {'epoch', 'args': argparse.Namespace, 'state_dict': {'module.' + key: ...}} of a
                                    Conv2d(3, 4, 3) + BatchNorm2d(4) + Linear(4, 2) Sequential, plus 'module.extra.weight'
                                    (float16), 'module.extra.double' (float64), 'module.extra.view' (a transposed view that
                                    shares the Linear weight's storage)
  tiny-wrapped.values.txt           name, dtype, shape, values of every tensor in tiny-wrapped.pth (after 'module.')
  tiny-module.pth                   torch.save(module): a pickled nn.Module, not a state dict
  tiny-legacy.pth                   the tiny state dict in the legacy (non-zip) format
"""
import argparse
import os
import sys

import torch
import torch.nn as nn

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "bench", "reference", "modules"))
import ela  # noqa: E402

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def randomise(model, generator):
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                p.fill_(5)
            elif name.endswith("running_var"):
                p.copy_(torch.rand(p.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean"):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
            elif p.dim() == 1:  # BN / GroupNorm affine, Linear bias
                p.copy_((torch.rand(p.shape, generator=generator) + 0.5) if name.endswith("weight")
                        else torch.randn(p.shape, generator=generator) * 0.1)
            else:  # conv / linear weights: variance-preserving
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) * (2.0 / fan_in) ** 0.5)


def normalise(pixels):
    scale = torch.tensor(1.0 / 255, dtype=torch.float32) / torch.tensor(STD, dtype=torch.float32)
    shift = -torch.tensor(MEAN, dtype=torch.float32) / torch.tensor(STD, dtype=torch.float32)
    return pixels * scale.view(1, 3, 1, 1) + shift.view(1, 3, 1, 1)


def main():
    torch.manual_seed(2024)
    generator = torch.Generator().manual_seed(2024)
    model = ela.MobileNetV2(num_classes=10, width=0.25, dropout=0.1, variant="B", cifar_stem=True)
    randomise(model, generator)
    model.eval()
    torch.save(model.state_dict(), os.path.join(here, "mbv2-elab-w025-cifar.pth"))

    pixels = torch.randint(0, 256, (4, 3, 32, 32), generator=generator).float()
    with torch.no_grad():
        features = model.forward_features(normalise(pixels))
    with open(os.path.join(here, "mbv2-elab-w025-cifar.features.txt"), "w") as f:
        f.write(f"# torch {torch.__version__}; see make_pth_fixture.py\npixels\n")
        for row in pixels.reshape(4, -1):
            f.write(" ".join(str(int(v)) for v in row.tolist()) + "\n")
        f.write("features\n")
        for row in features:
            f.write(" ".join(f"{v:.9g}" for v in row.tolist()) + "\n")
    print("features", tuple(features.shape), "mean |f|", features.abs().mean().item())

    stem = {k: v for k, v in model.state_dict().items() if k.startswith("features.0.")}
    torch.save(stem, os.path.join(here, "mbv2-stem-only.pth"))

    tiny = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    randomise(tiny, generator)
    state = {"module." + k: v for k, v in tiny.state_dict().items()}
    state["module.extra.weight"] = torch.randn(3, 2, generator=generator).half()
    state["module.extra.double"] = torch.randn(5, generator=generator).double()
    state["module.extra.view"] = tiny.state_dict()["2.weight"].t()   # shares the storage, stride (1, 4)
    checkpoint = {"epoch": 3, "args": argparse.Namespace(lr=0.1, arch="tiny"), "state_dict": state,
                  "best_acc1": torch.tensor(71.5)}
    torch.save(checkpoint, os.path.join(here, "tiny-wrapped.pth"))
    with open(os.path.join(here, "tiny-wrapped.values.txt"), "w") as f:
        for k, v in state.items():
            f.write(f"{k[len('module.'):]} {str(v.dtype).replace('torch.', '')} {','.join(map(str, v.shape))} "
                    + " ".join(f"{x:.9g}" for x in v.double().reshape(-1).tolist()) + "\n")

    torch.save(tiny, os.path.join(here, "tiny-module.pth"))
    torch.save(tiny.state_dict(), os.path.join(here, "tiny-legacy.pth"), _use_new_zipfile_serialization=False)
    for name in sorted(os.listdir(here)):
        if name.endswith(".pth"):
            print(name, os.path.getsize(os.path.join(here, name)), "bytes")


if __name__ == "__main__":
    main()
