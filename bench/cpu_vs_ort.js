// clickrt's CPU engine against ONNX Runtime (CPU, onnxruntime-node) on the same ONNX file, the same
// inputs and the same thread count, in one run; checks that the outputs agree.
//
// usage: node bench/cpu_vs_ort.js --clickrt BIN --model M.onnx --engine M.engine
//            [--batches 1,8,64,512,4096] [--threads 2] [--seconds 2] [--name NAME]
// Prints a markdown table row per batch and one JSON line per batch (prefix "json:").
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const ort = require('onnxruntime-node');

function args() {
  const a = { batches: '1,8,64,512,4096', threads: '2', seconds: '2', name: '' };
  for (let i = 2; i < process.argv.length; i += 2) a[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
  for (const k of ['clickrt', 'model', 'engine']) {
    if (!a[k]) { console.error(`missing --${k}`); process.exit(2); }
  }
  return a;
}

function toOrt(json) {
  const feeds = {};
  for (const [name, t] of Object.entries(json)) {
    if (t.dtype === 'int64') feeds[name] = new ort.Tensor('int64', BigInt64Array.from(t.data.map(BigInt)), t.shape);
    else if (t.dtype === 'float32') feeds[name] = new ort.Tensor('float32', Float32Array.from(t.data), t.shape);
    else throw new Error(`dtype ${t.dtype} not handled`);
  }
  return feeds;
}

function pct(sorted, q) { return sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))]; }

async function main() {
  const a = args();
  const threads = parseInt(a.threads, 10);
  const seconds = parseFloat(a.seconds);
  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'clickrt-bench-'));
  const rows = [];
  for (const batch of a.batches.split(',').map((x) => parseInt(x, 10))) {
    const inFile = path.join(tmp, `in_${batch}.json`);
    // clickrt times itself in-process and writes the synthetic inputs it used.
    const ck = JSON.parse(execFileSync(a.clickrt, ['bench', a.engine, '--batch', String(batch),
      '--threads', String(threads), '--duration', String(seconds), '--json', '--save-inputs', inFile],
    { encoding: 'utf8', maxBuffer: 1 << 28 }).trim().split('\n').pop());
    const inputs = JSON.parse(fs.readFileSync(inFile, 'utf8'));
    const feeds = toOrt(inputs);
    // ORT: warm-up, then timed runs for the same duration.
    for (let i = 0; i < 20; ++i) await session.run(feeds);
    const lat = [];
    const t0 = process.hrtime.bigint();
    while (Number(process.hrtime.bigint() - t0) / 1e9 < seconds || lat.length < 10) {
      const s = process.hrtime.bigint();
      await session.run(feeds);
      lat.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    lat.sort((x, y) => x - y);
    // Agreement: clickrt's engine output vs ORT's on the same inputs.
    const ortOut = await session.run(feeds);
    const outName = session.outputNames[0];
    const ckOut = JSON.parse(execFileSync(a.clickrt, ['run', '--engine', a.engine, '--inputs', inFile,
      '--threads', String(threads), '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 }));
    const ov = ortOut[outName].data;
    const cv = ckOut[outName].data;
    let maxDiff = 0;
    for (let i = 0; i < ov.length; ++i) maxDiff = Math.max(maxDiff, Math.abs(ov[i] - cv[i]));
    const row = {
      name: a.name, batch, threads,
      ort_p50_ms: pct(lat, 0.5), ort_p90_ms: pct(lat, 0.9),
      clickrt_p50_ms: ck.latency_ms.p50, clickrt_p90_ms: ck.latency_ms.p90,
      speedup_p50: pct(lat, 0.5) / ck.latency_ms.p50, max_abs_diff: maxDiff,
      clickrt_samples_per_s: ck.samples_per_s, ort_samples_per_s: batch * 1000 / pct(lat, 0.5),
    };
    rows.push(row);
    console.log('json:' + JSON.stringify(row));
    const tolerance = a.tolerance ? parseFloat(a.tolerance) : 1e-4;
    if (ov.length !== cv.length || !(maxDiff <= tolerance)) {
      console.error(`outputs disagree at batch ${batch}: max |diff| ${maxDiff}`);
      process.exitCode = 1;
    }
  }
  console.log(`\n| model | batch | ORT p50 ms | clickrt p50 ms | speedup | clickrt samples/s | max abs diff |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.batch} | ${r.ort_p50_ms.toFixed(3)} | ${r.clickrt_p50_ms.toFixed(3)} | ` +
      `${r.speedup_p50.toFixed(2)}x | ${Math.round(r.clickrt_samples_per_s)} | ${r.max_abs_diff.toExponential(1)} |`);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

main().catch((e) => { console.error(e); process.exit(1); });
