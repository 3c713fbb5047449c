"""DIN, Deep Interest Network (Zhou et al., KDD 2018).

Target attention over the user's behaviour sequence: each history item k_j (item and category
embeddings concatenated) gets weight a([q, k_j, q - k_j, q * k_j]) from an MLP 80-40-1 (PReLU),
padding positions (item id 0) get weight 0, and the weighted sum — not softmax-normalised, as
in the paper — is the user's interest in the target q. The DNN 200-80 (PReLU) then sees
[dense, field embeddings, target, interest].
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..published import NUM_DENSE, benchmark_field_sizes
from .layers import CTRModel, FieldEmbedding, dense_transform, mlp, sanitize_ids


@dataclass
class DINConfig:
    field_sizes: tuple = benchmark_field_sizes()
    num_dense: int = NUM_DENSE
    embed_dim: int = 16
    num_items: int = 100_000      # item ids 1..num_items-1; 0 = padding / unknown
    num_cats: int = 1_000         # category ids 1..num_cats-1; 0 = padding / unknown
    hist_len: int = 50
    attention: tuple = (80, 40)
    dnn: tuple = (200, 80)
    dropout: float = 0.0


class DIN(CTRModel):
    name = "din"

    def __init__(self, cfg: DINConfig):
        super().__init__()
        self.cfg = cfg
        names = ("sparse", "hist_items", "hist_cats", "target_item", "target_cat")
        self.input_names = (("dense",) if cfg.num_dense else ()) + names
        d = cfg.embed_dim
        self.embedding = FieldEmbedding(cfg.field_sizes, d)
        self.item_embedding = nn.Embedding(cfg.num_items, d)
        self.cat_embedding = nn.Embedding(cfg.num_cats, d)
        for table in (self.item_embedding, self.cat_embedding):
            nn.init.normal_(table.weight, std=0.01)
        self.register_buffer("num_items", torch.tensor(cfg.num_items, dtype=torch.int64))
        self.register_buffer("num_cats", torch.tensor(cfg.num_cats, dtype=torch.int64))
        self.attention = mlp(8 * d, cfg.attention, "prelu", 0.0)
        self.attention_out = nn.Linear(cfg.attention[-1], 1)
        in_dim = len(cfg.field_sizes) * d + cfg.num_dense + 4 * d
        self.dnn = mlp(in_dim, cfg.dnn, "prelu", cfg.dropout)
        self.dnn_out = nn.Linear(cfg.dnn[-1], 1)

    @staticmethod
    def sequence_lengths(inputs: dict) -> np.ndarray:
        """Per row, 1 + the last history position holding a non-zero item id: the columns
        after it are padding, which gets weight 0, so training may cut them off."""
        nonzero = np.asarray(inputs["hist_items"]) != 0
        last = nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
        return np.where(nonzero.any(axis=1), last, 0)

    @staticmethod
    def trim_batch(batch: dict, length: int) -> dict:
        length = max(int(length), 1)
        batch = dict(batch)
        for key in ("hist_items", "hist_cats"):
            batch[key] = batch[key][:, :length]
        return batch

    def _item(self, items: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        items = sanitize_ids(items, self.num_items)
        cats = sanitize_ids(cats, self.num_cats)
        return torch.cat([self.item_embedding(items), self.cat_embedding(cats)], dim=-1)

    def _attention_first_layer_split(self, query: torch.Tensor, keys: torch.Tensor):
        """The first attention layer W [q, k, q-k, q*k] + b computed as
        (Wq + Wd) q + b + (Wk - Wd) k + Wp (q*k): the same function (up to rounding) without
        the [B, L, 8d] concatenation, the costliest part of a training step. Export and
        inference (eval mode) keep the paper's form."""
        layer = self.attention[0]
        wq, wk, wd, wp = layer.weight.chunk(4, dim=1)
        per_row = nn.functional.linear(query, wq + wd, layer.bias).unsqueeze(1)    # [B, 1, H]
        per_key = (torch.matmul(keys, (wk - wd).t())
                   + torch.matmul(query.unsqueeze(1) * keys, wp.t()))              # [B, L, H]
        return (per_key + per_row).reshape(-1, layer.out_features)

    def logits(self, inputs: dict) -> torch.Tensor:
        cfg = self.cfg
        hist_items = inputs["hist_items"]
        query = self._item(inputs["target_item"], inputs["target_cat"])       # [B, 2d]
        keys = self._item(hist_items, inputs["hist_cats"])                     # [B, L, 2d]
        valid = (hist_items > 0) & (hist_items < self.num_items)               # [B, L]
        if self.training:
            hidden = self._attention_first_layer_split(query, keys)
        else:
            q = query.unsqueeze(1).expand_as(keys)
            att_in = torch.cat([q, keys, q - keys, q * keys], dim=-1)
            hidden = self.attention[0](att_in.reshape(-1, 8 * cfg.embed_dim))
        weight = self.attention_out(self.attention[1:](hidden)).reshape(hist_items.shape)
        weight = torch.where(valid, weight, torch.zeros_like(weight))
        interest = (weight.unsqueeze(-1) * keys).sum(dim=1)                   # [B, 2d]
        parts = [self.embedding(inputs["sparse"]).flatten(1), query, interest]
        if cfg.num_dense:
            parts.insert(0, dense_transform(inputs["dense"]))
        return self.dnn_out(self.dnn(torch.cat(parts, dim=1)))
