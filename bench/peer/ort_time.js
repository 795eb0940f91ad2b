#!/usr/bin/env node
// Times ONNX Runtime (CPU execution provider, all graph optimizations) on
// one model and one batch, for the peer benchmark (bench/README.md): prints
// one JSON line with the median and range of --repeats runs after a warm-up.
//
//   node bench/peer/ort_time.js MODEL.onnx INPUT_DIR [--threads=N]
//       [--repeats=N]
//
// INPUT_DIR holds <input_name>.npy for every model input (float32 or
// int64).
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', '..', 'tests', 'ort',
                              'node_modules', 'onnxruntime-node'));

// A little-endian float32 or int64 .npy (what the fixture scripts write).
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']*)'/.exec(header)[1];
  const types = {'<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array]};
  if (!(descr in types)) throw new Error(`${file}: ${descr} is not <f4 or <i8`);
  const [type, Array] = types[descr];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1]
                    .split(',').filter((s) => s.trim() !== '').map(Number);
  const data = buf.subarray(start + headerLen);
  const copy = new Array(data.length / Array.BYTES_PER_ELEMENT);
  new Uint8Array(copy.buffer).set(data);
  return new ort.Tensor(type, copy, shape);
}

async function main() {
  const args = process.argv.slice(2);
  const positional = args.filter((a) => !a.startsWith('--'));
  const option = (name, fallback) => {
    const a = args.find((x) => x.startsWith(`--${name}=`));
    return a ? Number(a.split('=')[1]) : fallback;
  };
  if (positional.length !== 2) {
    throw new Error('usage: ort_time.js MODEL INPUT_DIR [--threads=N] ' +
                    '[--repeats=N]');
  }
  const [model, inputDir] = positional;
  const threads = option('threads', 2);
  const repeats = option('repeats', 10);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const feeds = {};
  for (const name of session.inputNames) {
    feeds[name] = readNpy(path.join(inputDir, `${name}.npy`));
  }
  await session.run(feeds);  // warm-up
  const ms = [];
  for (let i = 0; i < repeats; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((a, b) => a - b);
  console.log(JSON.stringify({
    model, threads, repeats,
    median_ms: ms[Math.floor(ms.length / 2)], min_ms: ms[0],
    max_ms: ms[ms.length - 1],
  }));
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
