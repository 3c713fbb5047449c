"""clickrt model zoo command line. Run from the repository root as

  PYTHONPATH=python /usr/bin/python3 -m clickrt_zoo <command> [options]

Commands:
  generate   write synthetic Criteo-format data and print its Bayes AUC
  train      train a zoo model on Criteo / Avazu files; writes checkpoint.pt and schema.json
  export     export a checkpoint to ONNX (opset 17, dynamic batch) and check it with clickrt
  check      re-run the clickrt consistency check of a model folder (sample_inputs/outputs)
  bench      write the benchmark-shape DeepFM (Criteo Kaggle vocabularies, random weights)
"""
import argparse
import json
import os
import sys
from dataclasses import asdict, fields

import torch


def _json_arg(text):
    return json.loads(text) if text else {}


def cmd_generate(args):
    from .data.synthetic import SyntheticConfig, generate
    overrides = _json_arg(args.config)
    cfg = SyntheticConfig(seed=args.seed, behaviour=args.behaviour, **overrides)
    generate(args.out, cfg, args.train_rows, args.val_rows)
    return 0


def cmd_train(args):
    from .data.schema import build_schema, encode, input_sizes, save_schema
    from .models import build_model
    from .train import TrainConfig, save_checkpoint, train
    from .workflow import read_data
    torch.set_num_threads(args.threads)
    train_raw = read_data(args.train, args.format)
    val_raw = read_data(args.val, args.format)
    schema = build_schema(train_raw, encoding=args.encoding, min_count=args.min_count,
                          hash_size=args.hash_size)
    overrides = _json_arg(args.config)
    torch.manual_seed(args.seed)
    model = build_model(args.model, **input_sizes(schema), **overrides)
    tcfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)
                          if getattr(args, f.name, None) is not None})
    result = train(model, encode(schema, train_raw), train_raw.labels,
                   encode(schema, val_raw), val_raw.labels, tcfg)
    os.makedirs(args.out, exist_ok=True)
    save_checkpoint(os.path.join(args.out, "checkpoint.pt"), model,
                    {"train_config": asdict(tcfg)})
    save_schema(schema, os.path.join(args.out, "schema.json"))
    with open(os.path.join(args.out, "train.json"), "w") as f:
        json.dump({"val_auc": result.val_auc, "val_logloss": result.val_logloss,
                   "seconds": result.seconds, "history": result.history}, f, indent=1)
    print(f"wrote {args.out}/checkpoint.pt, schema.json, train.json; "
          f"val AUC {result.val_auc:.4f}, val logloss {result.val_logloss:.4f}")
    return 0


def cmd_export(args):
    from .export import example_inputs
    from .train import load_checkpoint
    from .workflow import export_and_check
    model = load_checkpoint(args.checkpoint)
    inputs = example_inputs(model, args.batch, seed=args.seed)
    _, _, result = export_and_check(model, args.out, inputs, external_data=args.external_data)
    if result.ran and not result.passed:
        return 1
    return 0


def cmd_check(args):
    from .check import check_against
    from .tensor_io import read_tensor, read_tensor_dir
    inputs = read_tensor_dir(os.path.join(args.model_dir, "sample_inputs"))
    expected = read_tensor(os.path.join(args.model_dir, "sample_outputs", "prob.pb"))
    result = check_against(os.path.join(args.model_dir, "model.onnx"), inputs, expected)
    return 0 if result.passed or not result.ran else 1


def cmd_bench(args):
    from .bench import write_benchmark_model
    write_benchmark_model(args.out, seed=args.seed)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="clickrt_zoo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="synthetic Criteo-format data with known Bayes AUC")
    g.add_argument("--out", required=True, help="folder for train.tsv, val.tsv, generator.json")
    g.add_argument("--train-rows", type=int, default=300_000)
    g.add_argument("--val-rows", type=int, default=50_000)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--behaviour", action="store_true",
                   help="add user behaviour columns (criteo_tsv_behaviour, for DIN)")
    g.add_argument("--config",
                   help="JSON overrides of SyntheticConfig, e.g. '{\"vocab_cap\": 500}'")
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("train", help="train a model; writes checkpoint.pt, schema.json")
    t.add_argument("--model", required=True, choices=["deepfm", "dcnv2", "din", "wide_deep"])
    t.add_argument("--train", required=True)
    t.add_argument("--val", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--format", default="criteo_tsv",
                   choices=["criteo_tsv", "criteo_tsv_behaviour", "avazu_csv"])
    t.add_argument("--encoding", default="vocab", choices=["vocab", "hash"])
    t.add_argument("--min-count", type=int, default=5, help="vocab: keep tokens seen this often")
    t.add_argument("--hash-size", type=int, default=100_000, help="hash: ids per field")
    t.add_argument("--config", help="JSON overrides of the model config, e.g. "
                   "'{\"embed_dim\": 8, \"dnn\": [200, 200, 200]}'")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", dest="batch_size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer", choices=["adam", "adagrad"])
    t.add_argument("--embedding-lr", dest="embedding_lr", type=float)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="checkpoint -> ONNX, then the clickrt consistency check")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True, help="path of the .onnx file")
    e.add_argument("--external-data", action="store_true",
                   help="tensors over 1 MiB into <out>.data (for big embedding tables)")
    e.add_argument("--batch", type=int, default=8, help="rows of the random check batch")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=cmd_export)

    c = sub.add_parser("check", help="clickrt consistency check of a model folder")
    c.add_argument("model_dir", help="e.g. models/deepfm")
    c.set_defaults(func=cmd_check)

    b = sub.add_parser("bench", help="benchmark-shape DeepFM with random weights")
    b.add_argument("--out", default="models/deepfm_bench")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=cmd_bench)

    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
