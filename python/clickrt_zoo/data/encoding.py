"""Token -> id encodings of categorical fields, vectorised over numpy byte-string arrays.

Every encoding maps the empty token (missing value) to id 0, and so does every token it
does not know; id 0 is each field's "unknown" row. The exact rules are part of the schema
contract read by the C++ server (python/README.md, "Schema"):

  vocab:    id = 1 + position of the token in the schema's `tokens` list.
  hash:     id = 1 + fnv1a_64(utf-8 bytes of the token) mod (size - 1).
  identity: the token is a decimal integer n; id = n if 0 <= n < size, else 0.
"""
from typing import Sequence, Tuple

import numpy as np

FNV64_OFFSET = np.uint64(0xCBF29CE484222325)
FNV64_PRIME = np.uint64(0x100000001B3)


def fnv1a_64(tokens: np.ndarray) -> np.ndarray:
    """FNV-1a 64-bit hash of each byte string in `tokens` (numpy 'S' array)."""
    tokens = np.asarray(tokens)
    if tokens.dtype.kind != "S":
        tokens = np.char.encode(tokens.astype(str), "utf-8")
    width = max(tokens.dtype.itemsize, 1)
    flat = np.ascontiguousarray(tokens.reshape(-1)).astype(f"S{width}")
    raw = np.frombuffer(flat.tobytes(), dtype=np.uint8).reshape(-1, width)
    lengths = np.char.str_len(flat)
    h = np.full(flat.shape[0], FNV64_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for pos in range(width):
            active = pos < lengths
            mixed = (h ^ raw[:, pos].astype(np.uint64)) * FNV64_PRIME
            h = np.where(active, mixed, h)
    return h.reshape(tokens.shape)


def hash_encode(tokens: np.ndarray, size: int) -> np.ndarray:
    if size < 2:
        raise ValueError("hash encoding needs size >= 2 (id 0 is reserved)")
    ids = (fnv1a_64(tokens) % np.uint64(size - 1)).astype(np.int64) + 1
    return np.where(np.char.str_len(tokens) == 0, 0, ids)


def build_vocab(tokens: np.ndarray, min_count: int) -> Tuple[list, np.ndarray]:
    """Tokens seen at least `min_count` times, most frequent first (ties: byte order).
    Returns (tokens as str, their counts)."""
    values, counts = np.unique(tokens, return_counts=True)
    keep = (counts >= min_count) & (np.char.str_len(values) > 0)
    values, counts = values[keep], counts[keep]
    order = np.lexsort((values, -counts))
    return [v.decode("utf-8") for v in values[order]], counts[order]


def vocab_encode(tokens: np.ndarray, vocab: Sequence[str]) -> np.ndarray:
    if len(vocab) == 0:
        return np.zeros(tokens.shape, dtype=np.int64)
    vocab_bytes = np.array([v.encode("utf-8") for v in vocab])
    order = np.argsort(vocab_bytes, kind="stable")
    sorted_vocab = vocab_bytes[order]
    pos = np.searchsorted(sorted_vocab, tokens)
    pos = np.minimum(pos, len(sorted_vocab) - 1)
    found = sorted_vocab[pos] == tokens
    return np.where(found, order[pos].astype(np.int64) + 1, 0)


def identity_encode(values: np.ndarray, size: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64)
    return np.where((values >= 0) & (values < size), values, 0)
