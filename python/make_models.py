#!/usr/bin/python3
"""Regenerates the committed model fixtures under models/<name>/, reproducibly.

For each of deepfm, dcnv2, wide_deep and din: synthetic data from a fixed seed (Criteo TSV;
with behaviour columns for din), training on CPU, ONNX export, the clickrt consistency check
(when build/bin/clickrt or $CLICKRT_BIN exists), and the model folder (see workflow.py):
model.onnx, schema.json, metadata.json, val.tsv, val_inputs/, val_labels.pb,
sample_inputs/, sample_outputs/.

The fixtures are smaller than the published configurations (embedding 8, narrower layers)
so that all four train in a few minutes on 2 cores; metadata.json records each config.

  /usr/bin/python3 python/make_models.py                 # all four fixtures
  /usr/bin/python3 python/make_models.py --only deepfm
  /usr/bin/python3 python/make_models.py --benchmark     # benchmark-shape DeepFM, random
                                                         # weights, into models/deepfm_bench
Exit status 1 if a model misses the Bayes-AUC criterion or fails the consistency check.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# OpenBLAS (torch's BLAS on Debian) starts its own threads; keep it to one like torch's, before
# torch loads it: oversubscribed threads on a busy 2-core machine are many times slower.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

from clickrt_zoo.bench import write_benchmark_model  # noqa: E402
from clickrt_zoo.check import missing_binary_reason  # noqa: E402
from clickrt_zoo.data.schema import build_schema, encode, input_sizes  # noqa: E402
from clickrt_zoo.data.synthetic import SyntheticConfig, generate  # noqa: E402
from clickrt_zoo.models import build_model, model_config  # noqa: E402
from clickrt_zoo.train import TrainConfig, save_checkpoint, train  # noqa: E402
from clickrt_zoo.workflow import read_data, write_model_dir  # noqa: E402

REPO = os.path.dirname(HERE)
AUC_GAP_LIMIT = 0.02
TRAIN_ROWS, VAL_ROWS = 300_000, 50_000
MIN_COUNT = 5

# name -> (dataset, model config overrides, training config)
FIXTURES = {
    "deepfm": ("criteo", {"embed_dim": 8, "dnn": (200, 200, 200)},
               TrainConfig(epochs=5, lr=1e-3, seed=1)),
    "dcnv2": ("criteo", {"embed_dim": 8, "dnn": (256, 256, 256)},
              TrainConfig(epochs=4, lr=1e-3, seed=2)),
    "wide_deep": ("criteo", {"embed_dim": 8, "dnn": (256, 128, 64)},
                  TrainConfig(epochs=7, lr=1e-3, seed=3)),
    "din": ("behaviour", {"embed_dim": 8, "attention": (32, 16)},
            TrainConfig(epochs=6, lr=1e-3, seed=4)),
}
DATASETS = {
    "criteo": SyntheticConfig(seed=1),
    "behaviour": SyntheticConfig(seed=2, behaviour=True),
}


def log(msg: str) -> None:
    print(msg, flush=True)


def make_fixture(name: str, data_dir: str, gen_info: dict, out_root: str, work: str) -> dict:
    dataset, overrides, tcfg = FIXTURES[name]
    fmt = gen_info["data_format"]
    t0 = time.time()
    train_raw = read_data(os.path.join(data_dir, "train.tsv"), fmt, log=log)
    val_path = os.path.join(data_dir, "val.tsv")
    val_raw = read_data(val_path, fmt, log=log)
    gcfg = gen_info["config"]
    schema = build_schema(train_raw, min_count=MIN_COUNT,
                          num_items=gcfg["num_items"] if gcfg["behaviour"] else None,
                          num_cats=gcfg["num_cats"] if gcfg["behaviour"] else None,
                          hist_len=gcfg["hist_len"])
    torch.manual_seed(tcfg.seed)
    model = build_model(name, **input_sizes(schema), **overrides)
    log(f"== {name}: {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"config {json.dumps(model_config(model))[:300]}")
    result = train(model, encode(schema, train_raw), train_raw.labels,
                   encode(schema, val_raw), val_raw.labels, tcfg, log=log)
    save_checkpoint(os.path.join(work, f"{name}.pt"), model, {"train_config": asdict(tcfg)})
    bayes = gen_info["splits"]["val"]
    metadata = {
        "model": name,
        "config": model_config(model),
        "config_overrides_of_published_defaults": overrides,
        "output": "prob: click probability (sigmoid applied), float32 [batch, 1]",
        "data": {"generator": gcfg, "data_format": fmt, "train_rows": len(train_raw),
                 "val_rows": len(val_raw), "vocab_min_count": MIN_COUNT},
        "train": asdict(tcfg),
        "metrics": {
            "val_auc": round(result.val_auc, 6), "val_logloss": round(result.val_logloss, 6),
            "bayes_auc": round(bayes["bayes_auc"], 6),
            "bayes_logloss": round(bayes["bayes_logloss"], 6),
            "auc_gap": round(bayes["bayes_auc"] - result.val_auc, 6),
            "auc_gap_limit": AUC_GAP_LIMIT,
            "history": [{k: round(v, 6) if isinstance(v, float) else v for k, v in h.items()}
                        for h in result.history]},
    }
    check = write_model_dir(os.path.join(out_root, name), model, schema, val_raw, val_path,
                            metadata, log=log)
    gap = bayes["bayes_auc"] - result.val_auc
    log(f"== {name}: val AUC {result.val_auc:.4f}, Bayes AUC {bayes['bayes_auc']:.4f}, "
        f"gap {gap:.4f} (limit {AUC_GAP_LIMIT}), {time.time() - t0:.0f}s")
    return {"name": name, "val_auc": result.val_auc, "bayes_auc": bayes["bayes_auc"],
            "gap": gap, "check": check, "seconds": time.time() - t0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(REPO, "models"))
    p.add_argument("--only", help="comma-separated subset of " + ",".join(FIXTURES))
    p.add_argument("--workdir", help="keep generated data and checkpoints here "
                   "(default: a temporary folder, removed at the end)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads, fixed so that reruns give the same bits (1: robust "
                   "on a busy 2-core machine)")
    p.add_argument("--benchmark", action="store_true",
                   help="only write the benchmark-shape DeepFM (random weights)")
    p.add_argument("--bench-out", default=os.path.join(REPO, "models", "deepfm_bench"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.benchmark:
        write_benchmark_model(args.bench_out, log=log)
        return 0
    names = args.only.split(",") if args.only else list(FIXTURES)
    unknown = set(names) - set(FIXTURES)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}")
    tmp = None
    if args.workdir:
        work = args.workdir
        os.makedirs(work, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="clickrt_make_models_")
        work = tmp.name
    start = time.time()
    reason = missing_binary_reason()
    if reason:
        log(f"NOTE: {reason}")
    infos, results = {}, []
    for name in names:
        dataset = FIXTURES[name][0]
        data_dir = os.path.join(work, dataset)
        if dataset not in infos:
            infos[dataset] = generate(data_dir, DATASETS[dataset], TRAIN_ROWS, VAL_ROWS, log=log)
        results.append(make_fixture(name, data_dir, infos[dataset], args.out, work))
    ok = True
    log(f"\n{'model':<10} {'val AUC':>8} {'Bayes':>8} {'gap':>7}  criterion  clickrt check")
    for r in results:
        met = r["gap"] <= AUC_GAP_LIMIT
        c = r["check"]
        check = (f"max abs diff {c.max_abs_diff:.2e} {'ok' if c.passed else 'FAILED'}"
                 if c.ran and c.passed else ("FAILED: " + c.message[:200] if c.ran
                                             else "skipped (no clickrt binary)"))
        ok = ok and met and (c.passed or not c.ran)
        log(f"{r['name']:<10} {r['val_auc']:8.4f} {r['bayes_auc']:8.4f} {r['gap']:7.4f}  "
            f"{'met' if met else 'MISSED':<9}  {check}")
    log(f"total {time.time() - start:.0f}s")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
