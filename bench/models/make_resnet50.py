"""Writes torchvision's ResNet-50 (random weights, BatchNorm statistics made
non-trivial) as ONNX plus .npz files of random images for the peer
benchmark: images.npz (--batch), calib.npz (64) and eval.npz (32).

Generated at bench time, never committed (102 MB). Needs Debian's
/usr/bin/python3 with python3-torch, python3-torchvision, python3-numpy.

  /usr/bin/python3 bench/models/make_resnet50.py OUT_DIR [--batch N]
"""
import argparse
import os

import numpy as np
import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(50)
    model = torchvision.models.resnet50(weights=None).eval()
    # Untrained BatchNorms are identities; give them statistics so that
    # folding them changes the weights as it would for a trained model.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.0)
                m.bias.uniform_(-0.1, 0.1)
    x = torch.randn(args.batch, 3, 224, 224)
    path = os.path.join(args.out, "model.onnx")
    torch.onnx.export(model, x[:1], path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    np.savez(os.path.join(args.out, "images.npz"), input=x.numpy())
    rng = np.random.default_rng(1)
    for name, n in (("calib", 64), ("eval", 32)):
        np.savez(os.path.join(args.out, f"{name}.npz"),
                 input=rng.standard_normal((n, 3, 224, 224), dtype=np.float32))
    print(f"wrote {path}, images.npz ({args.batch}), calib.npz, eval.npz")


if __name__ == "__main__":
    main()
