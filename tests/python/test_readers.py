import math

import numpy as np
import pytest

from clickrt_zoo.data.avazu import read_avazu
from clickrt_zoo.data.criteo import read_criteo
from clickrt_zoo.data.raw import MalformedDataError


def criteo_line(label="1", dense=None, cats=None, extra=None):
    dense = dense if dense is not None else [str(i) for i in range(13)]
    cats = cats if cats is not None else [f"{i:08x}" for i in range(26)]
    cols = [label] + dense + cats + (extra or [])
    return "\t".join(cols)


def write(tmp_path, name, lines, ending="\n"):
    path = tmp_path / name
    path.write_text(ending.join(lines) + ending, newline="")
    return str(path)


def test_criteo_valid_rows(tmp_path):
    dense = ["", "-2", "7"] + ["0"] * 10
    cats = ["", "68fd1e64"] + ["AbCdEf01"] * 24
    path = write(tmp_path, "a.tsv", [criteo_line("0", dense, cats), criteo_line()])
    raw = read_criteo(path)
    assert raw.report.num_malformed == 0 and len(raw) == 2
    assert raw.labels.tolist() == [0.0, 1.0]
    assert math.isnan(raw.dense[0, 0]) and raw.dense[0, 1] == -2 and raw.dense[0, 2] == 7
    assert raw.categorical[0, 0] == b"" and raw.categorical[0, 1] == b"68fd1e64"
    assert raw.categorical[1, 25] == b"00000019"
    assert raw.line_numbers.tolist() == [1, 2]


def test_criteo_crlf(tmp_path):
    path = write(tmp_path, "a.tsv", [criteo_line(), criteo_line("0")], ending="\r\n")
    raw = read_criteo(path)
    assert raw.report.num_malformed == 0 and raw.labels.tolist() == [1.0, 0.0]


def test_criteo_malformed_rows_are_reported_with_line_numbers(tmp_path):
    good = criteo_line()
    bad = {
        2: criteo_line(label="2"),
        3: criteo_line(dense=["1.5"] + ["0"] * 12),
        5: criteo_line(dense=["x"] + ["0"] * 12),
        6: criteo_line(cats=["zzzzzzzz"] + ["00000000"] * 25),
        7: criteo_line(cats=["0000000"] + ["00000000"] * 25),    # 7 hex digits
        8: "\t".join(good.split("\t")[:-1]),                        # 39 columns
        9: "",                                                      # blank line
        10: good + "\textra",                                        # 41 columns
        12: criteo_line(dense=["-"] + ["0"] * 12),
        13: criteo_line(dense=["1" * 16] + ["0"] * 12),             # too many digits
    }
    lines = [bad.get(i, good) for i in range(1, 15)]
    path = write(tmp_path, "bad.tsv", lines)
    raw = read_criteo(path)
    assert raw.report.lines_read == 14
    assert raw.report.num_malformed == len(bad)
    assert [line for line, _ in raw.report.malformed] == sorted(bad)
    assert raw.line_numbers.tolist() == [i for i in range(1, 15) if i not in bad]
    reasons = dict(raw.report.malformed)
    assert "label" in reasons[2]
    assert "I1" in reasons[3] and "'1.5'" in reasons[3]
    assert "C1" in reasons[6] and "C1" in reasons[7]
    assert "got 39" in reasons[8] and "got 1" in reasons[9] and "got 41" in reasons[10]
    assert "line 2:" in raw.report.summary()
    # good rows parse exactly
    assert np.all(raw.labels == 1.0)
    assert np.all(raw.dense[:, 1] == 1.0)


def test_criteo_raise_mode(tmp_path):
    path = write(tmp_path, "bad.tsv", [criteo_line(), criteo_line(label="x")])
    with pytest.raises(MalformedDataError, match="line 2"):
        read_criteo(path, on_malformed="raise")


def test_criteo_behaviour_columns(tmp_path):
    lines = [
        criteo_line(extra=["5", "2", "3,4,5", "1,1,2"]),
        criteo_line(extra=["", "", "", ""]),                    # unknown target, empty history
        criteo_line(extra=["5", "2", "3,4", "1"]),              # length mismatch
        criteo_line(extra=["5", "2", "3,a", "1,1"]),            # not an id
        criteo_line(extra=["-5", "2", "3", "1"]),               # negative id
        criteo_line(extra=["7", "3", ",".join(["9"] * 12), ",".join(["4"] * 12)]),
        criteo_line(),                                            # behaviour columns missing
    ]
    raw = read_criteo(write(tmp_path, "b.tsv", lines), behaviour=True, hist_len=10)
    assert [line for line, _ in raw.report.malformed] == [3, 4, 5, 7]
    b = raw.behaviour
    assert b["target_item"].tolist() == [5, 0, 7] and b["target_cat"].tolist() == [2, 0, 3]
    assert b["hist_items"].shape == (3, 10)
    assert b["hist_items"][0].tolist() == [3, 4, 5] + [0] * 7
    assert b["hist_cats"][0].tolist() == [1, 1, 2] + [0] * 7
    assert b["hist_items"][1].tolist() == [0] * 10
    assert b["hist_items"][2].tolist() == [9] * 10              # truncated to hist_len


AVAZU_HEADER = ("id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,"
                "app_domain,app_category,device_id,device_ip,device_model,device_type,"
                "device_conn_type,C14,C15,C16,C17,C18,C19,C20,C21")


def avazu_line(click="0", hour="14102100", first="1000009418151094273"):
    rest = ("1005,0,1fbe01fe,f3845767,28905ebd,ecad2386,7801e8d9,07d7df22,a99f214a,"
            "ddd2926e,44956a24,1,2,15706,320,50,1722,0,35,-1,79")
    return f"{first},{click},{hour},{rest}"


def test_avazu(tmp_path):
    lines = [AVAZU_HEADER, avazu_line(), avazu_line("1", "14102623"),
             avazu_line("2"),                        # bad click
             avazu_line(hour="14103100"),            # October 31st is fine ...
             avazu_line(hour="14023000"),            # ... February 30th is not
             avazu_line(hour="14102124"),            # hour 24
             avazu_line() + ",x",                    # extra column
             avazu_line(first="1 2")]                # id is not a field: space allowed there
    raw = read_avazu(write(tmp_path, "a.csv", lines))
    assert [line for line, _ in raw.report.malformed] == [4, 6, 7, 8]
    assert raw.line_numbers.tolist() == [2, 3, 5, 9]
    assert raw.labels.tolist() == [0, 1, 0, 0]
    assert raw.categorical_names[:4] == ("hour_of_day", "weekday", "C1", "banner_pos")
    assert raw.categorical.shape == (4, 23)
    # 2014-10-21 was a Tuesday (weekday 1), 2014-10-26 a Sunday (6)
    assert raw.categorical[0, :2].tolist() == [b"00", b"1"]
    assert raw.categorical[1, :2].tolist() == [b"23", b"6"]
    assert raw.dense.shape == (4, 0)


def test_avazu_header_required(tmp_path):
    with pytest.raises(MalformedDataError, match="header"):
        read_avazu(write(tmp_path, "a.csv", ["id,hour,C1", "1,14102100,5"]))
