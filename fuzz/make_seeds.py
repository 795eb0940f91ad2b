#!/usr/bin/env python3
"""Builds the fuzz targets' seed corpora (nothing is committed).

    make_seeds.py SOURCE_ROOT OUT_DIR

OUT_DIR/<target>/ gets, per fuzz target:
  fuzz_model_loader  testdata/**/*.onnx up to 64 KB and the node models of
                     Debian's libonnx-testdata (one small graph per op)
  fuzz_npz           testdata/**/*.npz up to 64 KB, plus small .npy/.npz files
                     written here with numpy in every dtype and layout the
                     reader knows (and a few it refuses)
  fuzz_job_spec      examples/*.json and variants of them
  fuzz_upload        a few fixed byte strings (the input is a script of
                     header/chunk/commit steps; any bytes are a valid one)
Idempotent: OUT_DIR/<target> is rebuilt from scratch each time.
"""
import glob
import hashlib
import io
import json
import os
import random
import shutil
import sys
import zipfile

import numpy as np

MAX_SEED_BYTES = 64 * 1024
ONNX_TESTDATA = '/usr/share/libonnx-testdata/data/node'


def put(out, data):
  name = hashlib.sha1(data).hexdigest()
  with open(os.path.join(out, name), 'wb') as f:
    f.write(data)


def small_files(pattern):
  for path in sorted(glob.glob(pattern, recursive=True)):
    if os.path.getsize(path) <= MAX_SEED_BYTES:
      with open(path, 'rb') as f:
        yield f.read()


def model_seeds(root, out):
  for data in small_files(os.path.join(root, 'testdata/**/*.onnx')):
    put(out, data)
  if not os.path.isdir(ONNX_TESTDATA):
    print(f'make_seeds: {ONNX_TESTDATA} missing (apt install '
          'libonnx-testdata); model seeds from testdata/ only')
    return
  for data in small_files(os.path.join(ONNX_TESTDATA, '*/model.onnx')):
    put(out, data)


def npy_bytes(array, fortran=False):
  buf = io.BytesIO()
  np.save(buf, np.asfortranarray(array) if fortran else array)
  return buf.getvalue()


def npz_bytes(arrays, compressed=False):
  buf = io.BytesIO()
  (np.savez_compressed if compressed else np.savez)(buf, **arrays)
  return buf.getvalue()


def npz_seeds(root, out):
  for data in small_files(os.path.join(root, 'testdata/**/*.npz')):
    put(out, data)
  rng = np.random.default_rng(0)
  image = rng.standard_normal((4, 2, 3)).astype(np.float32)
  tokens = rng.integers(0, 50, (3, 5)).astype(np.int64)
  labels = np.arange(4, dtype=np.int64)
  for dtype in ['<f4', '<f8', '<f2', '<i8', '<i4', 'i1', 'u1', '?', '>f4',
                '<u2', '<c8']:
    put(out, npy_bytes(image.astype(dtype)))
  put(out, npy_bytes(image, fortran=True))
  put(out, npy_bytes(np.float32(1.5)))
  put(out, npy_bytes(np.zeros((0, 2, 3), np.float32)))
  for compressed in (False, True):
    put(out, npz_bytes({'x': image, 'label': labels}, compressed))
    put(out, npz_bytes({'input_ids': tokens}, compressed))
  put(out, npz_bytes({'x': image, 'label': labels.astype(np.int32)}))
  put(out, npz_bytes({'x': image[:3], 'label': labels}))
  # A zip member that is not an .npy, and a stored (not deflated) archive
  # written by zipfile rather than numpy.
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, 'w') as z:
    z.writestr('x.npy', npy_bytes(image))
    z.writestr('notes.txt', b'not an array')
  put(out, buf.getvalue())


def job_spec_seeds(root, out):
  for path in sorted(glob.glob(os.path.join(root, 'examples/*.json'))):
    with open(path, 'rb') as f:
      data = f.read()
    put(out, data)
    spec = json.loads(data)
    # The service's form: blobs instead of paths.
    for key, value in list(spec.items()):
      if isinstance(value, dict) and 'path' in value:
        spec[key] = {'blobSha256': 'ab' * 32}
    put(out, json.dumps(spec).encode())
  put(out, b'{}')
  put(out, b'{"model": {"path": "m.onnx"}, "method": "METHOD_QAT"}')


def upload_seeds(out):
  rng = random.Random(0)
  for n in (0, 16, 200, 3000):
    put(out, bytes(rng.randrange(256) for _ in range(n)))


def main():
  root, out = sys.argv[1], sys.argv[2]
  makers = {
      'fuzz_model_loader': lambda d: model_seeds(root, d),
      'fuzz_npz': lambda d: npz_seeds(root, d),
      'fuzz_job_spec': lambda d: job_spec_seeds(root, d),
      'fuzz_upload': upload_seeds,
  }
  for target, make in makers.items():
    d = os.path.join(out, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    make(d)
    print(f'make_seeds: {len(os.listdir(d))} seeds in {d}')


if __name__ == '__main__':
  main()
