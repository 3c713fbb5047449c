"""Wide & Deep (Cheng et al., DLRS 2016).

Wide: a linear model over the sparse ids, the dense features and cross-product features of
field pairs (cross id = id_a * size_b + id_b, exact, no hashing). Deep: embeddings + dense
into a ReLU tower 1024-512-256. By default the crossed pairs are all pairs of fields whose
vocabulary has at most `cross_max_field_size` rows, which keeps the cross table small.
"""
from dataclasses import dataclass
from itertools import combinations
from typing import Optional

import torch
from torch import nn

from ..published import NUM_DENSE, benchmark_field_sizes
from .layers import CTRModel, FieldEmbedding, dense_transform, mlp, sanitize_ids


@dataclass
class WideDeepConfig:
    field_sizes: tuple = benchmark_field_sizes()
    num_dense: int = NUM_DENSE
    embed_dim: int = 16
    dnn: tuple = (1024, 512, 256)
    dropout: float = 0.0
    cross_pairs: Optional[tuple] = None  # ((i, j), ...) field indices; None = small fields
    cross_max_field_size: int = 30


def default_cross_pairs(field_sizes, max_size: int) -> tuple:
    small = [i for i, s in enumerate(field_sizes) if s <= max_size]
    return tuple(combinations(small, 2))


class WideDeep(CTRModel):
    name = "wide_deep"

    def __init__(self, cfg: WideDeepConfig):
        super().__init__()
        if cfg.cross_pairs is None:
            cfg.cross_pairs = default_cross_pairs(cfg.field_sizes, cfg.cross_max_field_size)
        cfg.cross_pairs = tuple(tuple(int(v) for v in p) for p in cfg.cross_pairs)
        self.cfg = cfg
        self.input_names = ("dense", "sparse") if cfg.num_dense else ("sparse",)
        self.embedding = FieldEmbedding(cfg.field_sizes, cfg.embed_dim)
        self.wide = FieldEmbedding(cfg.field_sizes, 1)
        self.bias = nn.Parameter(torch.zeros(1))
        if cfg.cross_pairs:
            a, b = zip(*cfg.cross_pairs)
            self.register_buffer("cross_a", torch.tensor(a, dtype=torch.int64))
            self.register_buffer("cross_b", torch.tensor(b, dtype=torch.int64))
            self.register_buffer("cross_b_size", torch.tensor(
                [cfg.field_sizes[j] for j in b], dtype=torch.int64))
            self.register_buffer("field_sizes", torch.tensor(cfg.field_sizes, dtype=torch.int64))
            self.wide_cross = FieldEmbedding(
                [cfg.field_sizes[i] * cfg.field_sizes[j] for i, j in cfg.cross_pairs], 1)
        if cfg.num_dense:
            self.wide_dense = nn.Linear(cfg.num_dense, 1, bias=False)
        in_dim = len(cfg.field_sizes) * cfg.embed_dim + cfg.num_dense
        self.dnn = mlp(in_dim, cfg.dnn, "relu", cfg.dropout)
        self.dnn_out = nn.Linear(cfg.dnn[-1] if cfg.dnn else in_dim, 1)

    def logits(self, inputs: dict) -> torch.Tensor:
        sparse = inputs["sparse"]
        wide = self.wide(sparse).sum(dim=1) + self.bias
        if self.cfg.cross_pairs:
            ids = sanitize_ids(sparse, self.field_sizes)
            # index_select: a Gather with either torch exporter (ids[:, idx] is GatherND in dynamo)
            crossed = (torch.index_select(ids, 1, self.cross_a) * self.cross_b_size
                       + torch.index_select(ids, 1, self.cross_b))
            wide = wide + self.wide_cross(crossed).sum(dim=1)
        deep_in = self.embedding(sparse).flatten(1)
        if self.cfg.num_dense:
            dense = dense_transform(inputs["dense"])
            wide = wide + self.wide_dense(dense)
            deep_in = torch.cat([deep_in, dense], dim=1)
        return wide + self.dnn_out(self.dnn(deep_in))
