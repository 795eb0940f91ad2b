"""What the sequence-LM fixture scripts (make_gpt2_lm.py, make_llama.py)
share: the export of a model with one input_ids [B, T] input and logits
[B, T, V] output, random token rows of T + 1 tokens (the model reads the
first T and is scored on predicting tokens 2..T+1), and issue 13's job
spec for it (int4 g128 weight-only with GPTQ).

  from lm_job import parse_lm_arguments, write_lm_job
  args = parse_lm_arguments(ap)   # OUT, --seq, --calibration-rows, ...
  write_lm_job(model, args.out, vocab=32000, seq=args.seq, ...)
"""
import argparse
import json
import os

import numpy as np
import torch


def parse_lm_arguments(ap=None):
    """Adds the arguments every sequence-LM fixture takes (OUT, --seq,
    --calibration-rows, --evaluation-rows) to `ap`, parses them, and makes
    args.out an existing absolute folder."""
    ap = ap or argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--calibration-rows", type=int, default=32)
    ap.add_argument("--evaluation-rows", type=int, default=8)
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    return args


def write_lm_job(model, out, vocab, seq, calibration_rows, evaluation_rows,
                 seed, display_name):
    """Writes model.onnx (opset 17; torch adds external data files past
    2 GB), calib.npz, eval.npz and job.json into `out`; returns the model
    path."""
    path = os.path.join(out, "model.onnx")
    example = torch.zeros((1, seq), dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(model, (example,), path, opset_version=17,
                          input_names=["input_ids"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "B"},
                                        "logits": {0: "B"}})
    rng = np.random.default_rng(seed)
    for name, rows in (("calib", calibration_rows), ("eval", evaluation_rows)):
        ids = rng.integers(0, vocab, size=(rows, seq + 1), dtype=np.int64)
        np.savez(os.path.join(out, f"{name}.npz"), input_ids=ids)
    spec = {
        "displayName": display_name,
        "model": {"path": path},
        "evaluation": {"task": "EVALUATION_TASK_LANGUAGE_MODEL"},
        "calibrationData": {"path": os.path.join(out, "calib.npz")},
        "evaluationData": {"path": os.path.join(out, "eval.npz")},
        "mode": "QUANT_MODE_WEIGHT_ONLY",
        "weights": {"type": "QUANT_DATA_TYPE_INT4",
                    "granularity": "GRANULARITY_PER_GROUP", "groupSize": 128},
        "algorithms": {"gptq": {"enabled": True, "blockSize": 128,
                                "dampPercent": 0.01}},
    }
    with open(os.path.join(out, "job.json"), "w") as f:
        json.dump(spec, f, indent=1)
    return path
