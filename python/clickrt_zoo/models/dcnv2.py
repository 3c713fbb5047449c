"""DCN-V2 (Wang et al., WWW 2021), parallel structure: full-rank cross network
x_{l+1} = x0 * (W_l x_l + b_l) + x_l beside a DNN, both over [embeddings, dense]."""
from dataclasses import dataclass

import torch
from torch import nn

from ..published import NUM_DENSE, benchmark_field_sizes
from .layers import CTRModel, FieldEmbedding, dense_transform, mlp


@dataclass
class DCNv2Config:
    field_sizes: tuple = benchmark_field_sizes()
    num_dense: int = NUM_DENSE
    embed_dim: int = 16
    cross_layers: int = 3
    dnn: tuple = (500, 500, 500)
    dropout: float = 0.0


class DCNv2(CTRModel):
    name = "dcnv2"

    def __init__(self, cfg: DCNv2Config):
        super().__init__()
        self.cfg = cfg
        self.input_names = ("dense", "sparse") if cfg.num_dense else ("sparse",)
        self.embedding = FieldEmbedding(cfg.field_sizes, cfg.embed_dim)
        in_dim = len(cfg.field_sizes) * cfg.embed_dim + cfg.num_dense
        self.cross = nn.ModuleList(nn.Linear(in_dim, in_dim) for _ in range(cfg.cross_layers))
        for layer in self.cross:
            nn.init.zeros_(layer.bias)
        self.dnn = mlp(in_dim, cfg.dnn, "relu", cfg.dropout)
        self.out = nn.Linear(in_dim + (cfg.dnn[-1] if cfg.dnn else in_dim), 1)

    def logits(self, inputs: dict) -> torch.Tensor:
        x0 = self.embedding(inputs["sparse"]).flatten(1)
        if self.cfg.num_dense:
            x0 = torch.cat([x0, dense_transform(inputs["dense"])], dim=1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.out(torch.cat([x, self.dnn(x0)], dim=1))
