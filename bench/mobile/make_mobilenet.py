#!/usr/bin/python3
"""A MobileNet-style fixture for issue 15: torchvision's mobilenet_v3_small
(depthwise convs, BatchNorm, HardSwish, squeeze-excitation with
HardSigmoid) trained briefly on Fashion-MNIST, exported to ONNX, with
calibration and evaluation sets in quantd's .npz format. Made at bench time,
never committed (bench/mobile/run.sh calls it).

    bench/mobile/make_mobilenet.py OUT_DIR [--epochs 2] [--train 12000]

Images are upsampled to 64x64 and replicated to 3 channels (the network
downsamples 32x; 28x28 would leave nothing). Writes OUT_DIR/model.onnx,
calib.npz (512 images), eval.npz (1000 images with labels), train.log.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "tools", "fixtures"))
import common  # noqa: E402  (Fashion-MNIST reader, determinism)

SIZE = 64


def prepare(images):
    """uint8 [N, 28, 28] -> float32 [N, 3, 64, 64], normalized."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    x = (x - common.FMNIST_MEAN) / common.FMNIST_STD
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear",
                      align_corners=False)
    return x.repeat(1, 3, 1, 1).contiguous()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train", type=int, default=12000)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    common.setup_determinism(20261207)
    torch.set_num_threads(2)  # speed over bit-reproducibility here
    x_train, y_train = common.load_fmnist("train")
    x_test, y_test = common.load_fmnist("t10k")
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    n = min(args.train, len(x_train))
    steps = args.epochs * (n // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3,
                                                total_steps=steps)
    start = time.time()
    model.train()
    for epoch in range(args.epochs):
        order = np.random.permutation(n)
        for b in range(n // 64):
            idx = order[b * 64:(b + 1) * 64]
            x = prepare(x_train[idx])
            y = torch.from_numpy(y_train[idx].astype(np.int64))
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, "
              f"{time.time() - start:.0f} s", flush=True)
    # torchvision's MobileNetV3 keeps BatchNorm running statistics with
    # momentum 0.01: after a few hundred steps they are still near their
    # initial values and the eval-mode model predicts one class. Recompute
    # them as a cumulative average over training batches.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        for b in range(40):
            model(prepare(x_train[b * 128:(b + 1) * 128]))
    model.eval()
    with torch.no_grad():
        ev = prepare(x_test[:1000])
        acc = (model(ev).argmax(1).numpy() == y_test[:1000]).mean()
    print(f"float accuracy on 1000 test images: {acc:.4f}", flush=True)
    path = os.path.join(args.out, "model.onnx")
    torch.onnx.export(model, ev[:1], path, opset_version=14,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    calib = prepare(x_train[n:n + 512]).numpy()
    np.savez(os.path.join(args.out, "calib.npz"), input=calib)
    np.savez(os.path.join(args.out, "eval.npz"), input=ev.numpy(),
             label=y_test[:1000].astype(np.int64))


if __name__ == "__main__":
    main()
