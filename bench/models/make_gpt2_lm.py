"""Writes a GPT-2-small-shaped causal language model over whole sequences
(12 layers, d 768, 12 heads, vocabulary 50257, random weights) as ONNX,
with the inputs and the job spec of issue 13's GPTQ row: int4 g128
weight-only with GPTQ, 32 calibration rows of 128 tokens.

  input    input_ids int64 [B, 128]
  output   logits float32 [B, 128, 50257]

bench/models/make_gpt2.py writes the one-token decoder step the peer
benchmark times; this one is what a user quantizes (GPTQ needs the
Hessians of whole sequences). lm_head is a Linear of its own rather than
tied to the token embedding, as in make_gpt2.py: 163M parameters in all
(653 MB). Token rows hold 129 tokens (the model reads the first 128 and
is scored on predicting tokens 2..129). Random weights: the perplexity is
near the vocabulary size and only its float-vs-quantized delta means
anything; the row is for wall time and memory.

Generated at bench time, never committed. Needs Debian's /usr/bin/python3
with python3-torch and python3-numpy. Writes model.onnx, calib.npz (32
rows), eval.npz (8 rows) and job.json (paths absolute).

  /usr/bin/python3 bench/models/make_gpt2_lm.py OUT_DIR [--seq 128]
      [--calibration-rows 32] [--evaluation-rows 8]
  OMP_NUM_THREADS=2 /usr/bin/time -v build/server/quantd run-job \\
      --spec OUT_DIR/job.json --out OUT_DIR/out
"""
import argparse
import math

import torch
from torch import nn

from lm_job import parse_lm_arguments, write_lm_job

D, HEADS, LAYERS, VOCAB, POSITIONS = 768, 12, 12, 50257, 1024
HEAD = D // HEADS


class Block(nn.Module):
    def __init__(self, seq):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D)
        self.c_attn = nn.Linear(D, 3 * D)
        self.c_proj = nn.Linear(D, D)
        self.ln_2 = nn.LayerNorm(D)
        self.c_fc = nn.Linear(D, 4 * D)
        self.mlp_proj = nn.Linear(4 * D, D)
        mask = torch.full((seq, seq), float("-inf")).triu(1)
        self.register_buffer("mask", mask)

    def forward(self, x):  # [B, T, D]
        b, t, _ = x.shape
        heads = lambda v: v.reshape(b, t, HEADS, HEAD).transpose(1, 2)
        q, k, v = (heads(v) for v in self.c_attn(self.ln_1(x)).split(D, 2))
        scores = q @ k.transpose(2, 3) / math.sqrt(HEAD) + self.mask
        y = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, t, D)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(nn.functional.gelu(self.c_fc(self.ln_2(x))))


class LanguageModel(nn.Module):
    def __init__(self, seq):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D)
        self.wpe = nn.Parameter(torch.zeros(seq, D))
        self.blocks = nn.ModuleList(Block(seq) for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, VOCAB, bias=False)

    def forward(self, input_ids):
        x = self.wte(input_ids) + self.wpe
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def main():
    ap = argparse.ArgumentParser()
    args = parse_lm_arguments(ap)
    out = args.out
    torch.manual_seed(2)
    model = LanguageModel(args.seq).eval()
    with torch.no_grad():  # GPT-2's initialization scale
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.02)
    path = write_lm_job(model, out, VOCAB, args.seq, args.calibration_rows,
                        args.evaluation_rows, seed=3,
                        display_name="GPT-2-small shape, int4 g128 weight-only, GPTQ")
    print(f"wrote {path}, calib.npz, eval.npz and job.json (seq {args.seq})")


if __name__ == "__main__":
    main()
