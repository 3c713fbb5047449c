"""Parsed rows before encoding, and the record of rows that could not be parsed."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np


class MalformedDataError(ValueError):
    pass


@dataclass
class ParseReport:
    """What a reader did with each line. Malformed rows are skipped, never guessed at."""
    path: str
    lines_read: int = 0
    rows_ok: int = 0
    malformed: List[Tuple[int, str]] = field(default_factory=list)  # (1-based line, reason)

    @property
    def num_malformed(self) -> int:
        return len(self.malformed)

    def summary(self, max_lines: int = 10) -> str:
        text = f"{self.path}: {self.rows_ok} rows read, {self.num_malformed} malformed rows skipped"
        for line, reason in self.malformed[:max_lines]:
            text += f"\n  line {line}: {reason}"
        if self.num_malformed > max_lines:
            text += f"\n  ... and {self.num_malformed - max_lines} more"
        return text


@dataclass
class RawData:
    """Rows as read from a file, before the schema turns them into model inputs.

    dense: float32 [rows, num_dense], NaN where the value is missing (raw, untransformed).
    categorical: byte strings [rows, num_fields], b"" where missing.
    behaviour (DIN data only): target_item, target_cat int64 [rows]; hist_items, hist_cats
      int64 [rows, hist_len], most recent first, padded with 0.
    line_numbers: the 1-based source line of each row.
    """
    labels: np.ndarray
    dense: np.ndarray
    dense_names: Tuple[str, ...]
    categorical: np.ndarray
    categorical_names: Tuple[str, ...]
    line_numbers: np.ndarray
    report: ParseReport
    behaviour: Optional[Dict[str, np.ndarray]] = None
    data_format: str = ""
    columns: Dict[str, int] = field(default_factory=dict)   # field name -> source column
    derived: Dict[str, str] = field(default_factory=dict)   # field name -> derivation rule

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, rows: np.ndarray) -> "RawData":
        behaviour = None
        if self.behaviour is not None:
            behaviour = {k: v[rows] for k, v in self.behaviour.items()}
        return RawData(self.labels[rows], self.dense[rows], self.dense_names,
                       self.categorical[rows], self.categorical_names, self.line_numbers[rows],
                       self.report, behaviour, self.data_format, self.columns, self.derived)


def handle_malformed(report: ParseReport, line_no: int, reason: str, on_malformed: str) -> None:
    if on_malformed == "raise":
        raise MalformedDataError(f"{report.path}: line {line_no}: {reason}")
    report.malformed.append((line_no, reason))
