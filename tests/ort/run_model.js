#!/usr/bin/env node
// Runs an ONNX model with ONNX Runtime (CPU execution provider), the runtime
// quantd's QDQ exports are meant for, so that C++ tests can compare its
// outputs with quantd's.
//
//   node tests/ort/run_model.js MODEL.onnx INPUT_DIR OUTPUT_DIR [--no-opt]
//       [--config=KEY=VALUE ...]
//
// Reads <input_name>.npy from INPUT_DIR for every model input and writes
// <output_name>.npy to OUTPUT_DIR for every output. --no-opt disables ORT's
// graph optimizations (no QDQ fusion: DequantizeLinear -> float kernels).
// --config sets a session configuration entry (onnxruntime's
// onnxruntime_session_options_config_keys.h), e.g.
// --config=session.qdq_matmulnbits_accuracy_level=0.
// Supports float32, int64, int32, int8 and uint8 arrays (C order, little
// endian). Exit code 0 on success, 1 with a message on stderr otherwise.
'use strict';

const fs = require('fs');
const path = require('path');

const DTYPES = {
  '<f4': {type: 'float32', array: Float32Array},
  '<i8': {type: 'int64', array: BigInt64Array},
  '<i4': {type: 'int32', array: Int32Array},
  '|i1': {type: 'int8', array: Int8Array},
  '|u1': {type: 'uint8', array: Uint8Array},
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) {
    throw new Error(`${file}: cannot parse .npy header ${header}`);
  }
  if (fortran[1] === 'True') throw new Error(`${file}: Fortran order`);
  const dt = DTYPES[descr[1]];
  if (!dt) throw new Error(`${file}: unsupported dtype ${descr[1]}`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s)
      .map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  const bytes = count * dt.array.BYTES_PER_ELEMENT;
  if (buf.length - offset < bytes) throw new Error(`${file}: truncated`);
  // Copy into an aligned buffer: typed arrays need aligned offsets.
  const data = new dt.array(count);
  Buffer.from(data.buffer).set(buf.subarray(offset, offset + bytes));
  return {type: dt.type, dims, data};
}

function writeNpy(file, tensor) {
  const entry = Object.entries(DTYPES).find(([, v]) => v.type === tensor.type);
  if (!entry) throw new Error(`output type ${tensor.type} is not supported`);
  const dims = tensor.dims.map(Number);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header =
      `{'descr': '${entry[0]}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Magic (6) + version (2) + length (2) + header + '\n', a multiple of 64.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header + ' '.repeat(total - 10 - header.length - 1) + '\n';
  const prefix = Buffer.alloc(10);
  prefix.write('\x93NUMPY', 0, 'latin1');
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  const data = tensor.data;
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([prefix, Buffer.from(header, 'latin1'),
    body]));
}

async function main() {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const noOpt = process.argv.includes('--no-opt');
  // "a.b.c=v" -> {a: {b: {c: "v"}}}, the form SessionOptions.extra takes.
  const extra = {};
  for (const arg of process.argv.slice(2)) {
    if (!arg.startsWith('--config=')) continue;
    const [key, ...rest] = arg.slice('--config='.length).split('=');
    const parts = key.split('.');
    let node = extra;
    for (const p of parts.slice(0, -1)) node = node[p] = node[p] || {};
    node[parts[parts.length - 1]] = rest.join('=');
  }
  if (args.length !== 3) {
    throw new Error(
        'usage: run_model.js MODEL.onnx INPUT_DIR OUTPUT_DIR [--no-opt]');
  }
  const [model, inputDir, outputDir] = args;
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    throw new Error(`onnxruntime-node is not installed (run ` +
        `tests/ort/install.sh): ${e.message}`);
  }
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: noOpt ? 'disabled' : 'all',
    extra,
  });
  const feeds = {};
  for (const name of session.inputNames) {
    const t = readNpy(path.join(inputDir, `${name}.npy`));
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  }
  const results = await session.run(feeds);
  fs.mkdirSync(outputDir, {recursive: true});
  for (const name of session.outputNames) {
    writeNpy(path.join(outputDir, `${name}.npy`), results[name]);
  }
  process.stderr.write(`onnxruntime-node ${ort.env.versions.common}: ran ` +
      `${path.basename(model)}, outputs ${session.outputNames.join(', ')}\n`);
}

main().catch((e) => {
  process.stderr.write(`run_model.js: ${e.message}\n`);
  process.exit(1);
});
