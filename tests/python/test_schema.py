import numpy as np

from clickrt_zoo.data.criteo import empty_criteo, read_criteo
from clickrt_zoo.data.encoding import (build_vocab, fnv1a_64, hash_encode, identity_encode,
                                       vocab_encode)
from clickrt_zoo.data.schema import build_schema, encode, input_sizes, load_schema, save_schema
from test_readers import criteo_line, write


def test_fnv1a_64_reference_values():
    # published FNV-1a 64-bit test vectors
    got = fnv1a_64(np.array([b"", b"a", b"foobar"]))
    assert [int(v) for v in got] == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C, 0x85944171F73967E8]


def test_hash_encode_range_and_missing():
    tokens = np.array([b"", b"68fd1e64", b"80e26c9b", b"a"])
    ids = hash_encode(tokens, 10)
    assert ids[0] == 0 and np.all((ids[1:] >= 1) & (ids[1:] < 10))
    assert ids[3] == 1 + 0xAF63DC4C8601EC8C % 9


def test_vocab_min_count_and_order():
    tokens = np.array([b"b", b"a", b"a", b"c", b"b", b"", b"", b"d"])
    vocab, counts = build_vocab(tokens, min_count=2)
    assert vocab == ["a", "b"] and counts.tolist() == [2, 2]     # ties in byte order
    assert vocab_encode(np.array([b"b", b"a", b"c", b"", b"zz"]), vocab).tolist() == [2, 1, 0, 0, 0]


def test_identity_encode():
    assert identity_encode(np.array([0, 3, 5, -1]), 5).tolist() == [0, 3, 0, 0]


def test_schema_round_trip_and_encode(tmp_path):
    cats_a = ["0000000a"] * 26
    cats_b = ["0000000b"] + [""] * 25
    lines = [criteo_line("1", ["", "-3"] + ["2"] * 11, cats_a),
             criteo_line("0", ["1"] * 13, cats_a),
             criteo_line("0", ["1"] * 13, cats_b)]
    raw = read_criteo(write(tmp_path, "t.tsv", lines))
    schema = build_schema(raw, min_count=2)
    path = str(tmp_path / "schema.json")
    save_schema(schema, path)
    assert load_schema(path) == schema
    sizes = input_sizes(schema)
    assert sizes["num_dense"] == 13 and sizes["field_sizes"] == (2,) * 26
    inputs = encode(schema, raw)
    assert inputs["dense"].dtype == np.float32 and inputs["dense"][0, 0] == 0.0   # default
    assert inputs["dense"][0, 1] == -3.0           # raw value; the model applies log1p(relu)
    assert inputs["sparse"].dtype == np.int64
    assert inputs["sparse"][:, 0].tolist() == [1, 1, 0]     # "0000000b" seen once: unknown
    assert [s["name"] for s in schema["inputs"]] == ["dense", "sparse"]
    assert schema["outputs"][0]["name"] == "prob"


def test_hash_schema_behaviour_layout():
    schema = build_schema(empty_criteo(behaviour=True), encoding="hash", hash_size=100,
                          num_items=30, num_cats=5, hist_len=50)
    names = [s["name"] for s in schema["inputs"]]
    assert names == ["dense", "sparse", "hist_items", "hist_cats", "target_item", "target_cat"]
    sizes = input_sizes(schema)
    assert sizes["num_items"] == 30 and sizes["num_cats"] == 5 and sizes["hist_len"] == 50
    by_name = {s["name"]: s for s in schema["inputs"]}
    assert by_name["hist_items"]["shape"] == ["batch", 50]
    assert by_name["target_item"]["shape"] == ["batch"]
    assert by_name["sparse"]["fields"][3] == {"name": "C4", "kind": "categorical", "column": 17,
                                             "encoding": "hash", "hash": "fnv1a_64", "size": 100}
