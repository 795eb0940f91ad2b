"""Writes a 1.1B-parameter Llama-shaped causal LM (TinyLlama's shape: 22
layers, d 2048, 32 query heads sharing 4 key/value heads (grouped-query
attention), rotary positions, RMSNorm, SwiGLU MLP of 5632, vocabulary
32000; random weights) as ONNX at opset 17, with issue 13's job for it:
int4 g128 weight-only with GPTQ, 32 calibration rows of 128 tokens.

  input    input_ids int64 [B, 128]
  output   logits float32 [B, 128, 32000]

4.4 GB of float weights: torch writes them as external data files beside
model.onnx (protobuf's 2 GB limit), which is also quantd's > 2 GB loading
case. Random weights: the perplexity is near the vocabulary size and only
its float-vs-quantized delta means anything; the row is for wall time and
memory.

Generated at bench time, never committed (needs ~10 GB of RAM and ~5 GB
of disk). Needs Debian's /usr/bin/python3 with python3-torch and
python3-numpy. Writes model.onnx (+ external data), calib.npz (32 rows),
eval.npz (8 rows) and job.json (paths absolute).

  /usr/bin/python3 bench/models/make_llama.py OUT_DIR [--layers 22]
  OMP_NUM_THREADS=2 /usr/bin/time -v build/server/quantd run-job \\
      --spec OUT_DIR/job.json --out OUT_DIR/out
"""
import argparse
import math

import torch
from torch import nn

from lm_job import parse_lm_arguments, write_lm_job

D, HEADS, KV_HEADS, FFN, VOCAB = 2048, 32, 4, 5632, 32000
HEAD = D // HEADS
EPS = 1e-5


class RmsNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(D))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight


def rotate(x, cos, sin):  # x [B, H, T, HEAD]; rotate-half rotary positions
    half = HEAD // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_norm = RmsNorm()
        self.q_proj = nn.Linear(D, HEADS * HEAD, bias=False)
        self.k_proj = nn.Linear(D, KV_HEADS * HEAD, bias=False)
        self.v_proj = nn.Linear(D, KV_HEADS * HEAD, bias=False)
        self.o_proj = nn.Linear(D, D, bias=False)
        self.post_norm = RmsNorm()
        self.gate_proj = nn.Linear(D, FFN, bias=False)
        self.up_proj = nn.Linear(D, FFN, bias=False)
        self.down_proj = nn.Linear(FFN, D, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.input_norm(x)
        q = self.q_proj(h).reshape(b, t, HEADS, HEAD).transpose(1, 2)
        k = self.k_proj(h).reshape(b, t, KV_HEADS, HEAD).transpose(1, 2)
        v = self.v_proj(h).reshape(b, t, KV_HEADS, HEAD).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        rep = HEADS // KV_HEADS  # each key/value head serves `rep` queries
        k = k[:, :, None].expand(b, KV_HEADS, rep, t, HEAD).reshape(b, HEADS, t, HEAD)
        v = v[:, :, None].expand(b, KV_HEADS, rep, t, HEAD).reshape(b, HEADS, t, HEAD)
        scores = q @ k.transpose(2, 3) / math.sqrt(HEAD) + mask
        y = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, t, D)
        x = x + self.o_proj(y)
        h = self.post_norm(x)
        gate = self.gate_proj(h)
        return x + self.down_proj(gate * torch.sigmoid(gate) * self.up_proj(h))


class LanguageModel(nn.Module):
    def __init__(self, layers, seq):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        self.blocks = nn.ModuleList(Block() for _ in range(layers))
        self.norm = RmsNorm()
        self.lm_head = nn.Linear(D, VOCAB, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, HEAD, 2).float() / HEAD))
        angles = torch.outer(torch.arange(seq).float(), inv)  # [T, HEAD/2]
        self.register_buffer("cos", angles.cos().repeat(1, 2))
        self.register_buffer("sin", angles.sin().repeat(1, 2))
        self.register_buffer("mask",
                             torch.full((seq, seq), float("-inf")).triu(1))

    def forward(self, input_ids):
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x, self.cos, self.sin, self.mask)
        return self.lm_head(self.norm(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=22)
    args = parse_lm_arguments(ap)
    out = args.out
    torch.manual_seed(4)
    model = LanguageModel(args.layers, args.seq).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.02)
    params = sum(p.numel() for p in model.parameters())
    path = write_lm_job(model, out, VOCAB, args.seq, args.calibration_rows,
                        args.evaluation_rows, seed=5,
                        display_name="Llama-shaped 1.1B, int4 g128 weight-only, GPTQ")
    print(f"wrote {path} ({params / 1e9:.2f}B parameters), calib.npz, "
          f"eval.npz and job.json (seq {args.seq})")


if __name__ == "__main__":
    main()
