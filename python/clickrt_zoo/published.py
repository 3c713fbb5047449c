"""Published facts the zoo relies on, kept in one place.

CRITEO_KAGGLE_CARDINALITIES: number of distinct values of each of the 26 categorical fields
(C1..C26) of the Criteo Kaggle Display Advertising Challenge training set (45.8M rows, 7 days),
as reported with Facebook's DLRM reference implementation for that data set.
"""

NUM_DENSE = 13
NUM_SPARSE = 26

CRITEO_KAGGLE_CARDINALITIES = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)

# The "benchmark shape": every field's vocabulary capped at this many rows, embedding dim 16.
BENCHMARK_VOCAB_CAP = 200_000
BENCHMARK_EMBED_DIM = 16


def benchmark_field_sizes(cap: int = BENCHMARK_VOCAB_CAP) -> tuple:
    """Per-field vocabulary sizes of the benchmark shape (row 0 of each field = unknown)."""
    return tuple(min(c, cap) for c in CRITEO_KAGGLE_CARDINALITIES)


DENSE_FIELD_NAMES = tuple(f"I{i}" for i in range(1, NUM_DENSE + 1))
SPARSE_FIELD_NAMES = tuple(f"C{i}" for i in range(1, NUM_SPARSE + 1))
