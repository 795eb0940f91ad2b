"""Writes a GPT-2-small-shaped decoder step (12 layers, d 768, 12 heads,
vocabulary 50257, random weights) as ONNX for the peer benchmark's
weight-only row: one new token per sequence attending to a fixed-length
key/value cache of --past earlier positions, which is what batch-B token
generation runs once per token.

  inputs   token int64 [B, 1]; past float32 [B, 12, 2, 12, P, 64]
           (per layer: keys and values, per head)
  output   logits float32 [B, 50257]

The token input is not called input_ids, as the step is not a sequence LM
(quantd once inferred that from the name; the job's evaluation task says
it now, and bench/models/make_gpt2_lm.py writes the sequence model). The step does not return the
updated cache: its cost is one more concat per
layer, and the benchmark times a step, not a generation loop. lm_head is a
Linear of its own rather than tied to the token embedding (GPT-2 ties them;
a tied weight is read by a Gather and a MatMul, and weight-only lowering
would keep it f32 for the Gather), 163M parameters in all (653 MB).

Generated at bench time, never committed. Needs Debian's /usr/bin/python3
with python3-torch and python3-numpy. Writes model.onnx and, per batch B in
--batches, step_bB.npz (one batch of inputs, for quantd run-model) and
step_bB/ (one .npy per input, for bench/peer/ort_time.js), plus calib.npz
and eval.npz (8 samples each) for a quantd job.

  /usr/bin/python3 bench/models/make_gpt2.py OUT_DIR [--past 128]
      [--batches 1,8]
"""
import argparse
import math
import os

import numpy as np
import torch
from torch import nn

D, HEADS, LAYERS, VOCAB, POSITIONS = 768, 12, 12, 50257, 1024
HEAD = D // HEADS


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D)
        self.c_attn = nn.Linear(D, 3 * D)
        self.c_proj = nn.Linear(D, D)
        self.ln_2 = nn.LayerNorm(D)
        self.c_fc = nn.Linear(D, 4 * D)
        self.mlp_proj = nn.Linear(4 * D, D)

    def forward(self, x, past):  # x [B, 1, D], past [B, 2, H, P, HEAD]
        b = x.shape[0]
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
        heads = lambda t: t.reshape(b, 1, HEADS, HEAD).transpose(1, 2)
        k = torch.cat([past[:, 0], heads(k)], dim=2)
        v = torch.cat([past[:, 1], heads(v)], dim=2)
        att = torch.softmax(heads(q) @ k.transpose(2, 3) / math.sqrt(HEAD), -1)
        y = (att @ v).transpose(1, 2).reshape(b, 1, D)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(nn.functional.gelu(self.c_fc(self.ln_2(x))))


class DecoderStep(nn.Module):
    def __init__(self, past):
        super().__init__()
        self.past = past
        self.wte = nn.Embedding(VOCAB, D)
        self.wpe = nn.Embedding(POSITIONS, D)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, VOCAB, bias=False)

    def forward(self, input_ids, past):
        x = self.wte(input_ids) + self.wpe.weight[self.past]
        for i, block in enumerate(self.blocks):
            x = block(x, past[:, i])
        return self.lm_head(self.ln_f(x))[:, 0, :]


def inputs(rng, batch, past):
    ids = rng.integers(0, VOCAB, size=(batch, 1), dtype=np.int64)
    kv = rng.standard_normal((batch, LAYERS, 2, HEADS, past, HEAD),
                             dtype=np.float32)
    return {"token": ids, "past": kv}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--past", type=int, default=128)
    ap.add_argument("--batches", default="1,8")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(2)
    model = DecoderStep(args.past).eval()
    with torch.no_grad():  # GPT-2's initialization scale
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.02)
    rng = np.random.default_rng(3)
    example = inputs(rng, 1, args.past)
    path = os.path.join(args.out, "model.onnx")
    torch.onnx.export(
        model, (torch.from_numpy(example["token"]),
                torch.from_numpy(example["past"])),
        path, opset_version=17, input_names=["token", "past"],
        output_names=["logits"],
        dynamic_axes={"token": {0: "B"}, "past": {0: "B"},
                      "logits": {0: "B"}})
    for b in (int(v) for v in args.batches.split(",")):
        feeds = inputs(rng, b, args.past)
        np.savez(os.path.join(args.out, f"step_b{b}.npz"), **feeds)
        d = os.path.join(args.out, f"step_b{b}")
        os.makedirs(d, exist_ok=True)
        for name, value in feeds.items():
            np.save(os.path.join(d, f"{name}.npy"), value)
    for name in ("calib", "eval"):
        np.savez(os.path.join(args.out, f"{name}.npz"), **inputs(rng, 8, args.past))
    print(f"wrote {path} and step/calib/eval inputs (past {args.past})")


if __name__ == "__main__":
    main()
