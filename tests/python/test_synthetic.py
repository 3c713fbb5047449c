import filecmp

import numpy as np

from clickrt_zoo.data.criteo import read_criteo
from clickrt_zoo.data.synthetic import SyntheticConfig, SyntheticCTR, generate
from clickrt_zoo.metrics import auc, logloss


def test_generator_is_deterministic(tmp_path):
    cfg = SyntheticConfig(seed=7, vocab_cap=50)
    a = generate(str(tmp_path / "a"), cfg, 2000, 500, log=lambda s: None)
    b = generate(str(tmp_path / "b"), SyntheticConfig(seed=7, vocab_cap=50), 2000, 500,
                 log=lambda s: None)
    for name in ("train.tsv", "val.tsv", "generator.json"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False)
    assert a == b
    c = generate(str(tmp_path / "c"), SyntheticConfig(seed=8, vocab_cap=50), 2000, 500,
                 log=lambda s: None)
    assert not filecmp.cmp(tmp_path / "a" / "train.tsv", tmp_path / "c" / "train.tsv",
                           shallow=False)
    assert c["splits"]["train"]["bayes_auc"] != a["splits"]["train"]["bayes_auc"]


def test_generated_file_parses_cleanly(tmp_path):
    cfg = SyntheticConfig(seed=3, vocab_cap=100, behaviour=True)
    generate(str(tmp_path), cfg, 1000, 100, log=lambda s: None)
    raw = read_criteo(str(tmp_path / "train.tsv"), behaviour=True, hist_len=cfg.hist_len)
    assert raw.report.num_malformed == 0 and len(raw) == 1000
    hist = raw.behaviour["hist_items"]
    assert hist.shape == (1000, 50) and hist.max() < cfg.num_items
    # padding only at the end, and categories padded where items are
    lengths = (hist > 0).sum(axis=1)
    assert np.all(hist[np.arange(50)[None, :] >= lengths[:, None]] == 0)
    assert np.array_equal(hist > 0, raw.behaviour["hist_cats"] > 0)


def test_bayes_auc_sanity():
    gen = SyntheticCTR(SyntheticConfig(seed=1))
    rows = gen.sample(20000, stream=0)
    bayes = auc(rows.labels, rows.probs)
    assert 0.7 < bayes < 0.95
    # the true probabilities beat a constant and a noisy copy of themselves
    ctr = rows.labels.mean()
    assert logloss(rows.labels, rows.probs) < logloss(rows.labels, np.full(len(rows.labels), ctr))
    noisy = rows.probs + np.random.default_rng(0).normal(0, 0.2, rows.probs.shape)
    assert auc(rows.labels, noisy) < bayes
    # labels follow the probabilities: calibration within a few points
    assert abs(rows.probs.mean() - ctr) < 0.01


def test_behaviour_term_matters():
    gen = SyntheticCTR(SyntheticConfig(seed=1, behaviour=True))
    rows = gen.sample(20000, stream=0)
    b = rows.behaviour
    same = ((b["hist_cats"] == b["target_cat"][:, None]) & (b["hist_items"] > 0)).sum(axis=1)
    # more history items in the target's category -> higher click probability
    assert rows.probs[same >= 10].mean() > rows.probs[same == 0].mean() + 0.03
