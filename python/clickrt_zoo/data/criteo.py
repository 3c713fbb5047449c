"""Reader for the Criteo Kaggle (Display Advertising Challenge) TSV format.

Each line: label <TAB> I1..I13 <TAB> C1..C26
  label: 0 or 1; I*: integers (may be negative) or empty; C*: 8 hex digits or empty.
The "criteo_tsv_behaviour" variant (DIN data) appends 4 columns:
  target_item <TAB> target_cat <TAB> hist_items <TAB> hist_cats
  target_*: non-negative decimal ids or empty (= 0, unknown);
  hist_*: comma-separated non-negative decimal ids, most recent first, possibly empty;
  hist_items and hist_cats have the same length.
A line that does not fit is recorded in the ParseReport with its line number and skipped.
"""
import re
from typing import Optional

import numpy as np

from ..published import DENSE_FIELD_NAMES, NUM_DENSE, NUM_SPARSE, SPARSE_FIELD_NAMES
from .raw import ParseReport, RawData, handle_malformed

CRITEO_COLUMNS = 1 + NUM_DENSE + NUM_SPARSE
BEHAVIOUR_COLUMNS = ("target_item", "target_cat", "hist_items", "hist_cats")

_INT = r"(?:-?[0-9]{1,15})?"  # 15 digits: exact in int64 and float64
_HEX = r"(?:[0-9a-fA-F]{8})?"
_LINE = re.compile(r"[01]" + (r"\t" + _INT) * NUM_DENSE + (r"\t" + _HEX) * NUM_SPARSE)
_INT_ONLY = re.compile(_INT + r"\Z")
_HEX_ONLY = re.compile(_HEX + r"\Z")
_ID = re.compile(r"[0-9]*\Z")
_ID_LIST = re.compile(r"(?:[0-9]+(?:,[0-9]+)*)?\Z")


def _diagnose(parts) -> str:
    """Why a line with the right column count failed the fast check."""
    if parts[0] not in ("0", "1"):
        return f"label must be 0 or 1, got {parts[0]!r}"
    for name, tok in zip(DENSE_FIELD_NAMES, parts[1:1 + NUM_DENSE]):
        if not _INT_ONLY.match(tok):
            return f"{name} is not an integer of at most 15 digits: {tok!r}"
    for name, tok in zip(SPARSE_FIELD_NAMES, parts[1 + NUM_DENSE:CRITEO_COLUMNS]):
        if not _HEX_ONLY.match(tok):
            return f"{name} is not 8 hex digits: {tok!r}"
    return "unrecognised content"


def _parse_behaviour(cols, hist_len: int):
    """Returns (target_item, target_cat, hist_items, hist_cats) or an error string."""
    for name, tok in zip(BEHAVIOUR_COLUMNS[:2], cols[:2]):
        if not _ID.match(tok):
            return f"{name} is not a non-negative integer: {tok!r}"
    for name, tok in zip(BEHAVIOUR_COLUMNS[2:], cols[2:]):
        if not _ID_LIST.match(tok):
            return f"{name} is not a comma-separated list of non-negative integers: {tok!r}"
    items = [int(v) for v in cols[2].split(",")] if cols[2] else []
    cats = [int(v) for v in cols[3].split(",")] if cols[3] else []
    if len(items) != len(cats):
        return f"hist_items has {len(items)} ids but hist_cats has {len(cats)}"
    return (int(cols[0] or 0), int(cols[1] or 0), items[:hist_len], cats[:hist_len])


def read_criteo(path: str, behaviour: bool = False, hist_len: int = 50,
                max_rows: Optional[int] = None, on_malformed: str = "skip") -> RawData:
    """Reads a Criteo TSV file (plain, or with behaviour columns when `behaviour`).

    on_malformed: "skip" records bad lines in `report.malformed` and goes on; "raise" stops at
    the first with MalformedDataError.
    """
    report = ParseReport(path)
    ncols = CRITEO_COLUMNS + (len(BEHAVIOUR_COLUMNS) if behaviour else 0)
    labels, dense, cats, line_numbers = [], [], [], []
    beh = []
    nan = float("nan")
    with open(path, "r", encoding="utf-8", errors="replace", newline="\n") as f:
        for line_no, line in enumerate(f, start=1):
            if max_rows is not None and len(labels) >= max_rows:
                break
            report.lines_read += 1
            line = line.rstrip("\n").rstrip("\r")
            parts = line.split("\t")
            if len(parts) != ncols:
                handle_malformed(report, line_no, f"expected {ncols} tab-separated columns, "
                                 f"got {len(parts)}", on_malformed)
                continue
            head = "\t".join(parts[:CRITEO_COLUMNS]) if behaviour else line
            if not _LINE.fullmatch(head):
                handle_malformed(report, line_no, _diagnose(parts), on_malformed)
                continue
            if behaviour:
                parsed = _parse_behaviour(parts[CRITEO_COLUMNS:], hist_len)
                if isinstance(parsed, str):
                    handle_malformed(report, line_no, parsed, on_malformed)
                    continue
                beh.append(parsed)
            labels.append(parts[0] == "1")
            dense.append([int(v) if v else nan for v in parts[1:1 + NUM_DENSE]])
            cats.extend(parts[1 + NUM_DENSE:CRITEO_COLUMNS])
            line_numbers.append(line_no)
    n = len(labels)
    report.rows_ok = n
    behaviour_arrays = None
    if behaviour:
        behaviour_arrays = {
            "target_item": np.array([b[0] for b in beh], dtype=np.int64).reshape(n),
            "target_cat": np.array([b[1] for b in beh], dtype=np.int64).reshape(n),
            "hist_items": _pad([b[2] for b in beh], hist_len),
            "hist_cats": _pad([b[3] for b in beh], hist_len),
        }
    return RawData(
        labels=np.array(labels, dtype=np.float32),
        dense=np.array(dense, dtype=np.float32).reshape(n, NUM_DENSE),
        dense_names=DENSE_FIELD_NAMES,
        categorical=np.array(cats, dtype="S8").reshape(n, NUM_SPARSE),
        categorical_names=SPARSE_FIELD_NAMES,
        line_numbers=np.array(line_numbers, dtype=np.int64),
        report=report,
        behaviour=behaviour_arrays,
        data_format="criteo_tsv_behaviour" if behaviour else "criteo_tsv",
        columns=criteo_columns(behaviour),
    )


def criteo_columns(behaviour: bool = False) -> dict:
    """Field name -> 0-based column of the Criteo layout."""
    names = ("label",) + DENSE_FIELD_NAMES + SPARSE_FIELD_NAMES
    if behaviour:
        names += BEHAVIOUR_COLUMNS
    return {name: i for i, name in enumerate(names)}


def empty_criteo(behaviour: bool = False, hist_len: int = 50) -> RawData:
    """Zero rows in the Criteo layout: enough to build a hash-encoded schema without data."""
    beh = None
    if behaviour:
        beh = {"target_item": np.zeros(0, np.int64), "target_cat": np.zeros(0, np.int64),
               "hist_items": np.zeros((0, hist_len), np.int64),
               "hist_cats": np.zeros((0, hist_len), np.int64)}
    return RawData(np.zeros(0, np.float32), np.zeros((0, NUM_DENSE), np.float32),
                   DENSE_FIELD_NAMES, np.zeros((0, NUM_SPARSE), "S8"), SPARSE_FIELD_NAMES,
                   np.zeros(0, np.int64), ParseReport("(none)"), beh,
                   "criteo_tsv_behaviour" if behaviour else "criteo_tsv",
                   criteo_columns(behaviour))


def _pad(seqs, length: int) -> np.ndarray:
    out = np.zeros((len(seqs), length), dtype=np.int64)
    for i, seq in enumerate(seqs):
        out[i, :len(seq)] = seq
    return out
