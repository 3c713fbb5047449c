"""DeepFM (Guo et al., IJCAI 2017): first-order + FM second-order + DNN over shared embeddings."""
from dataclasses import dataclass

import torch
from torch import nn

from ..published import NUM_DENSE, benchmark_field_sizes
from .layers import CTRModel, FieldEmbedding, dense_transform, mlp


@dataclass
class DeepFMConfig:
    field_sizes: tuple = benchmark_field_sizes()
    num_dense: int = NUM_DENSE
    embed_dim: int = 16
    dnn: tuple = (400, 400, 400)
    dropout: float = 0.0


class DeepFM(CTRModel):
    name = "deepfm"

    def __init__(self, cfg: DeepFMConfig):
        super().__init__()
        self.cfg = cfg
        self.input_names = ("dense", "sparse") if cfg.num_dense else ("sparse",)
        self.embedding = FieldEmbedding(cfg.field_sizes, cfg.embed_dim)
        self.first_order = FieldEmbedding(cfg.field_sizes, 1)
        self.bias = nn.Parameter(torch.zeros(1))
        num_fields = len(cfg.field_sizes)
        if cfg.num_dense:
            self.dense_linear = nn.Linear(cfg.num_dense, 1, bias=False)
        in_dim = num_fields * cfg.embed_dim + cfg.num_dense
        self.dnn = mlp(in_dim, cfg.dnn, "relu", cfg.dropout)
        self.dnn_out = nn.Linear(cfg.dnn[-1] if cfg.dnn else in_dim, 1)

    def logits(self, inputs: dict) -> torch.Tensor:
        sparse = inputs["sparse"]
        emb = self.embedding(sparse)                                   # [B, F, D]
        linear = self.first_order(sparse).sum(dim=1) + self.bias       # [B, 1]
        # FM: sum_{i<j} <e_i, e_j> = 0.5 * (|sum_i e_i|^2 - sum_i |e_i|^2)
        square_of_sum = emb.sum(dim=1) * emb.sum(dim=1)
        sum_of_square = (emb * emb).sum(dim=1)
        fm = 0.5 * (square_of_sum - sum_of_square).sum(dim=1, keepdim=True)
        deep_in = emb.flatten(1)
        if self.cfg.num_dense:
            dense = dense_transform(inputs["dense"])
            linear = linear + self.dense_linear(dense)
            deep_in = torch.cat([deep_in, dense], dim=1)
        return linear + fm + self.dnn_out(self.dnn(deep_in))
