"""Synthetic click logs in the Criteo TSV format, labelled by a hidden ground-truth model.

Categorical ids are Zipf-distributed per field; the hidden model is FM-like, so the zoo's
models can represent it and the ceiling on AUC is known:

  logit = bias + sum_f w_f[id_f]                              (first order)
        + sum_{f<g} <v_f[id_f], v_g[id_g]>                    (pairwise, rank-k vectors)
        + sum_j a_j * (log(1 + max(x_j, 0)) - mean_j)         (dense)
        [+ behaviour term, DIN data only, see below]
  label ~ Bernoulli(sigmoid(logit))

The Bayes AUC is the AUC that the true probabilities reach on the sampled labels: no model
can expect to beat it on the same rows.

With `behaviour`, each row also has a user history (items and their categories) and a target
ad; the behaviour term is
  w_item[target] + beta * log(1 + #history items in the target's category)
                 + gamma * mean_j <u[target], u[hist_j]>  (u: hidden item vectors)
which is what target attention is built to pick up. These rows are written in the
criteo_tsv_behaviour layout (4 extra columns, see criteo.py).
"""
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional

import numpy as np

from ..metrics import auc, logloss
from ..tensor_io import write_json
from ..published import CRITEO_KAGGLE_CARDINALITIES, NUM_DENSE

# Per-field fraction of missing dense values and typical magnitude, loosely like Criteo's.
DENSE_MISSING = (0.45, 0.0, 0.21, 0.22, 0.03, 0.22, 0.04, 0.0, 0.04, 0.45, 0.04, 0.77, 0.22)
DENSE_SCALE = (3.0, 100.0, 20.0, 7.0, 18000.0, 115.0, 16.0, 12.0, 100.0, 0.6, 2.7, 1.0, 8.0)


@dataclass
class SyntheticConfig:
    seed: int = 1
    vocab_cap: int = 1000            # field f has min(Criteo cardinality f, vocab_cap) ids
    zipf_exponent: float = 1.4
    categorical_missing: float = 0.03
    bias: float = -1.6
    first_order_std: float = 0.5
    rank: int = 4                    # dimension of the hidden pairwise vectors
    vector_std: float = 0.2
    rank_decay: float = 2.0          # effects of the id of popularity rank r scale by
                                     # (1 + r / rank_decay) ** -0.5: rare ids matter less
    dense_weight_std: float = 0.12
    behaviour: bool = False
    hist_len: int = 50
    num_items: int = 2000            # item ids 1..num_items-1
    num_cats: int = 50               # category ids 1..num_cats-1
    item_weight_std: float = 0.3
    category_match_weight: float = 0.5   # beta
    item_vector_weight: float = 1.0      # gamma
    field_sizes: tuple = field(init=False)

    def __post_init__(self):
        self.field_sizes = tuple(min(c, self.vocab_cap) for c in CRITEO_KAGGLE_CARDINALITIES)


@dataclass
class SyntheticRows:
    labels: np.ndarray              # float32 [n]
    probs: np.ndarray               # float64 [n], the true click probability
    dense: np.ndarray               # int64 [n, 13]; missing where dense_missing
    dense_missing: np.ndarray       # bool [n, 13]
    ranks: np.ndarray               # int64 [n, 26]: hidden id per field, -1 = missing
    behaviour: Optional[Dict[str, np.ndarray]] = None   # target_item/cat [n], hist_* [n, L]
    hist_lengths: Optional[np.ndarray] = None


class SyntheticCTR:
    """The hidden model; draws from it are reproducible from (config.seed, stream)."""

    def __init__(self, cfg: SyntheticConfig):
        self.cfg = cfg
        rng = np.random.default_rng([cfg.seed, 0])
        self.cdfs, self.weights, self.vectors, self.tokens = [], [], [], []
        for size in cfg.field_sizes:
            p = 1.0 / np.arange(1, size + 1) ** cfg.zipf_exponent
            self.cdfs.append(np.cumsum(p / p.sum()))
            decay = (1.0 + np.arange(size) / cfg.rank_decay) ** -0.5
            self.weights.append(rng.normal(0, cfg.first_order_std, size) * decay)
            self.vectors.append(rng.normal(0, cfg.vector_std, (size, cfg.rank)) * decay[:, None])
            self.tokens.append(_hex_tokens(rng, size))
        self.dense_weights = rng.normal(0, cfg.dense_weight_std, NUM_DENSE)
        self.dense_means = np.zeros(NUM_DENSE)
        if cfg.behaviour:
            self.item_cat = rng.integers(1, cfg.num_cats, size=cfg.num_items)
            self.item_cat[0] = 0
            p = 1.0 / np.arange(1, cfg.num_items) ** 1.0
            self.item_cdf = np.cumsum(p / p.sum())
            # item ids are in popularity order; effects of rare items decay as for fields
            decay = (1.0 + np.arange(cfg.num_items) / cfg.rank_decay) ** -0.5
            self.item_weights = rng.normal(0, cfg.item_weight_std, cfg.num_items) * decay
            cat_vec = rng.normal(0, 1, (cfg.num_cats, cfg.rank))
            own = rng.normal(0, 1, (cfg.num_items, cfg.rank)) * decay[:, None]
            self.item_vectors = (cat_vec[self.item_cat] + 0.5 * own) / np.sqrt(1.25 * cfg.rank)
            self.items_by_cat = [np.flatnonzero(self.item_cat == c) for c in range(cfg.num_cats)]
        # center the dense term on a reference draw so `bias` sets the base rate
        ref = self._draw_dense(np.random.default_rng([cfg.seed, 1]), 20000)
        self.dense_means = np.mean(np.log1p(np.maximum(ref[0], 0)), axis=0)

    def _draw_dense(self, rng, n):
        scale = np.array(DENSE_SCALE)
        # geometric-like counts with a heavy tail: exp of a normal times the field's scale
        values = np.floor(scale * np.exp(rng.normal(0, 1.2, (n, NUM_DENSE))) * rng.random((n, 1)))
        values = values.astype(np.int64)
        negative = rng.random(n) < 0.05          # I2 takes small negative values in Criteo
        values[negative, 1] = -rng.integers(1, 4, negative.sum())
        missing = rng.random((n, NUM_DENSE)) < np.array(DENSE_MISSING)
        return values, missing

    def sample(self, n: int, stream: int) -> SyntheticRows:
        """n rows from stream `stream` (use different streams for train and validation)."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 100 + stream])
        ranks = np.empty((n, len(cfg.field_sizes)), dtype=np.int64)
        logit = np.full(n, cfg.bias)
        vec_sum = np.zeros((n, cfg.rank))
        vec_sq = np.zeros(n)
        for f, cdf in enumerate(self.cdfs):
            r = np.minimum(np.searchsorted(cdf, rng.random(n)), len(cdf) - 1)
            missing = rng.random(n) < cfg.categorical_missing
            v = np.where(missing[:, None], 0.0, self.vectors[f][r])
            logit += np.where(missing, 0.0, self.weights[f][r])
            vec_sum += v
            vec_sq += (v * v).sum(axis=1)
            ranks[:, f] = np.where(missing, -1, r)
        logit += 0.5 * ((vec_sum * vec_sum).sum(axis=1) - vec_sq)
        dense, dense_missing = self._draw_dense(rng, n)
        transformed = np.where(dense_missing, 0.0, np.log1p(np.maximum(dense, 0)))
        logit += (transformed - self.dense_means) @ self.dense_weights
        behaviour, lengths = None, None
        if cfg.behaviour:
            behaviour, lengths, extra = self._behaviour(rng, n)
            logit += extra
        probs = 1.0 / (1.0 + np.exp(-logit))
        labels = (rng.random(n) < probs).astype(np.float32)
        return SyntheticRows(labels, probs, dense, dense_missing, ranks, behaviour, lengths)

    def _draw_items(self, rng, shape, cats=None):
        """Zipf-popular items; where cats is given (> 0), restricted to that category."""
        items = np.minimum(np.searchsorted(self.item_cdf, rng.random(shape)),
                           len(self.item_cdf) - 1) + 1
        if cats is not None:
            flat_items, flat_cats = items.reshape(-1), cats.reshape(-1)
            for c in np.unique(flat_cats[flat_cats > 0]):
                where = np.flatnonzero(flat_cats == c)
                pool = self.items_by_cat[c]
                if len(pool):
                    # popularity inside the category: Zipf over the pool's order
                    p = 1.0 / np.arange(1, len(pool) + 1)
                    flat_items[where] = pool[np.minimum(np.searchsorted(
                        np.cumsum(p / p.sum()), rng.random(len(where))), len(pool) - 1)]
            items = flat_items.reshape(shape)
        return items

    def _behaviour(self, rng, n):
        cfg = self.cfg
        L = cfg.hist_len
        favourite = rng.integers(1, cfg.num_cats, size=(n, 2))
        lengths = rng.integers(0, L + 1, size=n)
        pick = rng.integers(0, 2, size=(n, L))
        from_fav = rng.random((n, L)) < 0.7
        hist_cat_choice = np.where(from_fav, np.take_along_axis(favourite, pick, 1), 0)
        hist_items = self._draw_items(rng, (n, L), hist_cat_choice)
        target_fav = rng.random(n) < 0.5
        target_cat_choice = np.where(target_fav, favourite[:, 0], 0)
        target_item = self._draw_items(rng, (n,), target_cat_choice)
        valid = np.arange(L)[None, :] < lengths[:, None]
        hist_items = np.where(valid, hist_items, 0)
        hist_cats = np.where(valid, self.item_cat[hist_items], 0)
        target_cat = self.item_cat[target_item]
        matches = ((hist_cats == target_cat[:, None]) & valid).sum(axis=1)
        dots = (self.item_vectors[hist_items] * self.item_vectors[target_item][:, None, :]).sum(-1)
        mean_dot = (dots * valid).sum(axis=1) / np.maximum(lengths, 1)
        extra = (self.item_weights[target_item] + cfg.category_match_weight * np.log1p(matches)
                 + cfg.item_vector_weight * mean_dot)
        extra -= cfg.category_match_weight * 1.0    # keep the base rate near the plain data's
        behaviour = {"target_item": target_item, "target_cat": target_cat,
                     "hist_items": hist_items, "hist_cats": hist_cats}
        return behaviour, lengths, extra

    def write_tsv(self, path: str, rows: SyntheticRows) -> None:
        n = rows.labels.shape[0]
        columns = [np.where(rows.labels > 0.5, "1", "0").tolist()]
        for j in range(NUM_DENSE):
            col = rows.dense[:, j].astype(str)
            columns.append(np.where(rows.dense_missing[:, j], "", col).tolist())
        for f, tokens in enumerate(self.tokens):
            r = rows.ranks[:, f]
            columns.append(np.where(r < 0, "", tokens[np.maximum(r, 0)]).tolist())
        if rows.behaviour is not None:
            b = rows.behaviour
            columns.append(b["target_item"].astype(str).tolist())
            columns.append(b["target_cat"].astype(str).tolist())
            for key in ("hist_items", "hist_cats"):
                seqs = b[key].astype(str)
                columns.append([",".join(seqs[i, :rows.hist_lengths[i]]) for i in range(n)])
        with open(path, "w", newline="\n") as f:
            for line in zip(*columns):
                f.write("\t".join(line))
                f.write("\n")


def _hex_tokens(rng, size: int) -> np.ndarray:
    """`size` distinct 8-hex-digit tokens, as Criteo's hashed categorical values look."""
    values = np.unique(rng.integers(0, 2 ** 32, size=2 * size + 16, dtype=np.uint64))
    values = rng.permutation(values)[:size]
    return np.array([f"{v:08x}" for v in values])


def generate(out_dir: str, cfg: SyntheticConfig, train_rows: int, val_rows: int,
             log=print) -> dict:
    """Writes train.tsv, val.tsv and generator.json (config + Bayes AUC / log loss per split)
    into out_dir; returns what generator.json holds."""
    import os
    os.makedirs(out_dir, exist_ok=True)
    gen = SyntheticCTR(cfg)
    info = {"config": asdict(cfg), "data_format":
            "criteo_tsv_behaviour" if cfg.behaviour else "criteo_tsv", "splits": {}}
    for stream, (split, n) in enumerate((("train", train_rows), ("val", val_rows))):
        rows = gen.sample(n, stream)
        gen.write_tsv(os.path.join(out_dir, f"{split}.tsv"), rows)
        stats = {"rows": n, "ctr": float(rows.labels.mean()),
                 "bayes_auc": auc(rows.labels, rows.probs),
                 "bayes_logloss": logloss(rows.labels, rows.probs)}
        info["splits"][split] = stats
        log(f"generated {split}: {n} rows, ctr {stats['ctr']:.4f}, "
            f"Bayes AUC {stats['bayes_auc']:.4f}, Bayes logloss {stats['bayes_logloss']:.4f}")
    write_json(os.path.join(out_dir, "generator.json"), info)
    return info
