"""Writes a BERT-base-shaped encoder (12 post-LayerNorm layers, d 768, 12
heads, FFN 3072, sequence 128, vocabulary 30522, random weights) with a
2-class head on the first token, as ONNX for the peer benchmark's static
W8A8 row.

  input    tokens int64 [B, 128]
  output   logits float32 [B, 2]

The input is not called input_ids (before issue 13, quantd read a model
with such an input as a next-token LM; the job spec's evaluation task now
says what the outputs mean, and its default is classification). No
attention mask (every position attends to every other), which changes no
MatMul shape. 110M parameters (438 MB). Generated at bench time, never
committed; needs Debian's /usr/bin/python3 with python3-torch and
python3-numpy. Writes model.onnx, calib.npz and eval.npz (16 sequences
each); bench/peer/run.sh cuts its timing batch from eval.npz.

  /usr/bin/python3 bench/models/make_bert.py OUT_DIR
"""
import argparse
import math
import os

import numpy as np
import torch
from torch import nn

D, HEADS, LAYERS, VOCAB, SEQ = 768, 12, 12, 30522, 128
HEAD = D // HEADS


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D)
        self.out = nn.Linear(D, D)
        self.ln_1 = nn.LayerNorm(D)
        self.up = nn.Linear(D, 4 * D)
        self.down = nn.Linear(4 * D, D)
        self.ln_2 = nn.LayerNorm(D)

    def forward(self, x):  # [B, T, D]
        b, t, _ = x.shape
        heads = lambda v: v.reshape(b, t, HEADS, HEAD).transpose(1, 2)
        q, k, v = (heads(v) for v in self.qkv(x).split(D, dim=2))
        att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(HEAD), -1)
        y = (att @ v).transpose(1, 2).reshape(b, t, D)
        x = self.ln_1(x + self.out(y))
        return self.ln_2(x + self.down(nn.functional.gelu(self.up(x))))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, D)
        self.positions = nn.Parameter(torch.zeros(SEQ, D))
        self.ln = nn.LayerNorm(D)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.head = nn.Linear(D, 2)

    def forward(self, tokens):
        x = self.ln(self.tokens(tokens) + self.positions)
        for layer in self.layers:
            x = layer(x)
        return self.head(x[:, 0, :])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(4)
    model = Encoder().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.02)
    rng = np.random.default_rng(5)
    tokens = lambda n: rng.integers(0, VOCAB, size=(n, SEQ), dtype=np.int64)
    path = os.path.join(args.out, "model.onnx")
    torch.onnx.export(model, torch.from_numpy(tokens(1)), path,
                      opset_version=17, input_names=["tokens"],
                      output_names=["logits"],
                      dynamic_axes={"tokens": {0: "B"}, "logits": {0: "B"}})
    for name, n in (("calib", 16), ("eval", 16)):
        np.savez(os.path.join(args.out, f"{name}.npz"), tokens=tokens(n))
    print(f"wrote {path}, calib.npz, eval.npz")


if __name__ == "__main__":
    main()
