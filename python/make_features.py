#!/usr/bin/env python3
"""Writes a feature file for a bundled model: models/<name>/features.tsv and features.json.

The Criteo columns are anonymous, so the split of fields between the user, the ad (item) and the
request context is a choice made here, not a fact of the data:

  context (sent with each ranking request, never stored): I1, I2, I3 (dense counters that
      behave like request-time signals) and C6, C9 (low-cardinality fields, like a device or
      page type);
  item (ad-side, stored as item:<ad id>): C3, C4, C7, C10, C16, C21, C24, and for DIN the
      target ad itself, target_item and target_cat;
  user (stored as user:<id>): every other schema field (I4..I13, the other C fields, and for DIN
      the behaviour history hist_items, hist_cats).

Rows come from models/<name>/val.tsv: line n gives user:n (its user-side fields) and an ad whose
id is the 1-based rank of its item-side values among the distinct ones, in order of first
appearance (identical ads share one item row). features.json records the split (the server reads
"user", "item", "context") and, per val.tsv line, its ad id ("item_of_line"), so that
{context of line n, item:<item_of_line[n-1]>, user:n} reassembles line n exactly
(tests/features/zoo_features_test.cc checks this against val_inputs/).

Usage: python3 python/make_features.py [deepfm dcnv2 din wide_deep]   (plain python3, no torch)
Empty values are not written: a missing field takes the schema's default, as an empty one would.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTEXT = ["I1", "I2", "I3", "C6", "C9"]
ITEM = ["C3", "C4", "C7", "C10", "C16", "C21", "C24", "target_item", "target_cat"]


def schema_fields(schema):
    """(name, column) of every field, in schema order."""
    return [(f["name"], f["column"]) for spec in schema["inputs"] for f in spec["fields"]]


def split(fields):
    names = [name for name, _ in fields]
    context = [n for n in names if n in CONTEXT]
    item = [n for n in names if n in ITEM]
    user = [n for n in names if n not in CONTEXT and n not in ITEM]
    return user, item, context


def row_text(key, names, columns, parts):
    cells = [key] + [f"{n}={parts[columns[n]]}" for n in names if parts[columns[n]] != ""]
    for cell in cells:
        if "\t" in cell or "\n" in cell:
            raise ValueError(f"{key}: a value holds a tab or a newline: {cell!r}")
    return "\t".join(cells)


def make(model):
    folder = os.path.join(ROOT, "models", model)
    with open(os.path.join(folder, "schema.json")) as f:
        schema = json.load(f)
    fields = schema_fields(schema)
    columns = dict(fields)
    user, item, context = split(fields)
    users, items, item_ids, item_of_line = [], [], {}, []
    with open(os.path.join(folder, "val.tsv"), encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rstrip("\r").split("\t")
            ad = tuple(parts[columns[n]] for n in item)
            if ad not in item_ids:
                item_ids[ad] = len(item_ids) + 1
                items.append(row_text(f"item:{item_ids[ad]}", item, columns, parts))
            item_of_line.append(item_ids[ad])
            users.append(row_text(f"user:{line_no}", user, columns, parts))
    header = [
        f"# clickrt feature file for models/{model} (python/make_features.py; format: "
        "src/features/feature_store.h)",
        f"# {len(users)} users (user:<line of val.tsv>), {len(items)} ads (item:<ad id>)",
        "# user-side fields: " + " ".join(user),
        "# item-side fields: " + " ".join(item),
        "# request context (sent with each request, not stored): " + " ".join(context),
    ]
    with open(os.path.join(folder, "features.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(header + users + items) + "\n")
    meta = [
        ("model", model),
        ("feature_file", "features.tsv"),
        ("keys", {"user": "user:<id>", "item": "item:<ad id>"}),
        ("user", user),
        ("item", item),
        ("context", context),
        ("source", "val.tsv: line n is user:n with ad item:item_of_line[n-1] and its own "
                   "context fields"),
        ("item_of_line", item_of_line),
    ]
    with open(os.path.join(folder, "features.json"), "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in meta) + "\n}\n")
    size = os.path.getsize(os.path.join(folder, "features.tsv"))
    print(f"models/{model}/features.tsv: {len(users)} users, {len(items)} ads, {size} bytes")


def main(argv):
    for model in argv or ["deepfm", "dcnv2", "din", "wide_deep"]:
        make(model)


if __name__ == "__main__":
    main(sys.argv[1:])
