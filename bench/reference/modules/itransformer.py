"""iTransformer (ETTh1 96->96, D = d_ff = 256) for the module benchmark: reuses bench/reference/itransformer_reference.py."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from itransformer_reference import ITransformer  # noqa: E402  (our own reference, not the paper's code)


def cases():
    model = ITransformer(96, 96, d_model=256, d_ff=256, n_heads=8, e_layers=2, dropout=0.1)
    model.eval()  # dropout off: the same arithmetic as ours in both timings
    x = torch.randn(32, 96, 7)
    marks = torch.randn(32, 96, 4)
    return [dict(block="iTransformer", size="B 32, L 96→96, N 7 + 4 marks, D 256, 2 layers",
                 module=model, inputs=[x, marks], forward=lambda m, xs: m(xs[0], xs[1]))]
