"""Building blocks shared by the zoo's models.

Every block keeps to the op set clickrt supports (see clickrt_zoo.export.SUPPORTED_OPS).
"""
from typing import Sequence

import torch
from torch import nn


def sanitize_ids(ids: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Maps ids outside [0, size) to 0, the "unknown" row of each field.

    With one table shared by all fields an out-of-range id would silently read another
    field's rows; here it reads the field's own unknown row instead.
    """
    valid = (ids > -1) & (ids < sizes)
    return torch.where(valid, ids, torch.zeros_like(ids))


class FieldEmbedding(nn.Module):
    """One table holding every field's vocabulary; field f's rows start at offsets[f].

    Input: raw per-field ids [batch, fields] (int64). Output: [batch, fields, dim].
    """

    def __init__(self, field_sizes: Sequence[int], dim: int, init_std: float = 0.03):
        super().__init__()
        sizes = torch.tensor(list(field_sizes), dtype=torch.int64)
        if len(sizes) == 0 or int(sizes.min()) < 1:
            raise ValueError(f"field sizes must be >= 1, got {list(field_sizes)}")
        self.register_buffer("sizes", sizes)
        self.register_buffer("offsets", torch.cumsum(sizes, 0) - sizes)
        self.table = nn.Embedding(int(sizes.sum()), dim)
        nn.init.normal_(self.table.weight, std=init_std)

    @property
    def num_fields(self) -> int:
        return int(self.sizes.numel())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(sanitize_ids(ids, self.sizes) + self.offsets)


def dense_transform(dense: torch.Tensor) -> torch.Tensor:
    """log(1 + max(x, 0)): the usual Criteo transform, applied inside the model so the
    server feeds raw counts (missing values filled with the schema default, 0)."""
    return torch.log(torch.relu(dense) + 1.0)


class PReLU(nn.PReLU):
    """nn.PReLU (exported as ONNX PRelu). In training mode it computes the same values as
    relu(x) - a * relu(-x), whose backward is much faster than torch 1.13's prelu_backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return torch.relu(x) - self.weight * torch.relu(-x)
        return super().forward(x)


def mlp(in_dim: int, hidden: Sequence[int], activation: str = "relu",
        dropout: float = 0.0) -> nn.Sequential:
    """Linear layers with an activation after each; no output layer."""
    layers = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if activation == "relu":
            layers.append(nn.ReLU())
        elif activation == "prelu":
            layers.append(PReLU(width, init=0.25))
        else:
            raise ValueError(f"unknown activation {activation!r}")
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    return nn.Sequential(*layers)


class CTRModel(nn.Module):
    """Base of the zoo's models.

    Subclasses set `input_names` (the ONNX graph inputs, in positional order) and implement
    `logits(inputs: dict) -> [batch, 1]`. `forward(*inputs)` returns the click probability,
    sigmoid(logits), shape [batch, 1] — the one output, named "prob" in ONNX.
    """

    name = "ctr"
    input_names: tuple = ()

    def logits(self, inputs: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"{self.name} takes inputs {self.input_names}, got {len(inputs)}")
        return torch.sigmoid(self.logits(dict(zip(self.input_names, inputs))))

    def input_spec(self) -> dict:
        """name -> (dtype, shape with -1 for the batch dimension)."""
        raise NotImplementedError
