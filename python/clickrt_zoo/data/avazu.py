"""Reader for the Avazu CTR prediction CSV format (Kaggle 2014).

Header line, then rows of
  id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,
  app_category,device_id,device_ip,device_model,device_type,device_conn_type,C14..C21
click: 0 or 1; hour: YYMMDDHH. Every other column except `id` is a categorical field, read as
its token string; `hour` becomes two derived categorical fields, hour_of_day ("00".."23") and
weekday ("0" = Monday .. "6"). Avazu has no dense features.
"""
import datetime
import re
from typing import Optional

import numpy as np

from .raw import MalformedDataError, ParseReport, RawData, handle_malformed

AVAZU_HEADER = ("id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,"
                "app_domain,app_category,device_id,device_ip,device_model,device_type,"
                "device_conn_type,C14,C15,C16,C17,C18,C19,C20,C21").split(",")
_HOUR = re.compile(r"[0-9]{8}\Z")
_TOKEN = re.compile(r"[^\s\"]{0,64}\Z")


def _derive_hour(hour: str):
    """(hour_of_day, weekday) tokens of a YYMMDDHH string, or None if it is not a real hour."""
    if not _HOUR.match(hour):
        return None
    try:
        day = datetime.date(2000 + int(hour[0:2]), int(hour[2:4]), int(hour[4:6]))
    except ValueError:
        return None
    if int(hour[6:8]) > 23:
        return None
    return hour[6:8], str(day.weekday())


def read_avazu(path: str, max_rows: Optional[int] = None, on_malformed: str = "skip") -> RawData:
    report = ParseReport(path)
    with open(path, "r", encoding="utf-8", errors="replace", newline="\n") as f:
        header = f.readline().rstrip("\n").rstrip("\r").split(",")
        missing = [c for c in ("click", "hour") if c not in header]
        if missing:
            raise MalformedDataError(f"{path}: line 1: header lacks columns {missing}")
        click_col, hour_col = header.index("click"), header.index("hour")
        skip = {click_col, hour_col} | ({header.index("id")} if "id" in header else set())
        cat_cols = [i for i in range(len(header)) if i not in skip]
        names = ("hour_of_day", "weekday") + tuple(header[i] for i in cat_cols)
        labels, cats, line_numbers = [], [], []
        report.lines_read = 1
        for line_no, line in enumerate(f, start=2):
            if max_rows is not None and len(labels) >= max_rows:
                break
            report.lines_read += 1
            parts = line.rstrip("\n").rstrip("\r").split(",")
            if len(parts) != len(header):
                handle_malformed(report, line_no, f"expected {len(header)} comma-separated "
                                 f"columns, got {len(parts)}", on_malformed)
                continue
            if parts[click_col] not in ("0", "1"):
                handle_malformed(report, line_no,
                                 f"click must be 0 or 1, got {parts[click_col]!r}", on_malformed)
                continue
            derived = _derive_hour(parts[hour_col])
            if derived is None:
                handle_malformed(report, line_no,
                                 f"hour is not a valid YYMMDDHH: {parts[hour_col]!r}", on_malformed)
                continue
            row = [parts[i] for i in cat_cols]
            bad = next((header[c] for c, t in zip(cat_cols, row) if not _TOKEN.match(t)), None)
            if bad is not None:
                handle_malformed(report, line_no, f"{bad} holds a quote, a space or more than "
                                 f"64 characters: {parts[header.index(bad)]!r}", on_malformed)
                continue
            labels.append(parts[click_col] == "1")
            cats.extend(derived)
            cats.extend(row)
            line_numbers.append(line_no)
    n = len(labels)
    report.rows_ok = n
    tokens = np.char.encode(np.array(cats, dtype=str), "utf-8") if cats else np.array([], "S1")
    columns = {name: header.index(name) for name in names[2:]}
    columns.update({"hour_of_day": hour_col, "weekday": hour_col, "label": click_col})
    return RawData(
        labels=np.array(labels, dtype=np.float32),
        dense=np.zeros((n, 0), dtype=np.float32),
        dense_names=(),
        categorical=tokens.reshape(n, len(names)),
        categorical_names=names,
        line_numbers=np.array(line_numbers, dtype=np.int64),
        report=report,
        data_format="avazu_csv",
        columns=columns,
        derived={"hour_of_day": "hour_of_day", "weekday": "weekday"},
    )
