import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))

import torch  # noqa: E402

torch.set_num_threads(2)

from clickrt_zoo.models import build_model  # noqa: E402

MODEL_NAMES = ("deepfm", "dcnv2", "din", "wide_deep")
SMALL_FIELDS = tuple([40] * 19 + [3, 4, 10, 15, 18, 24, 27])


def small_model(name: str, seed: int = 0):
    """A zoo model with small vocabularies and layers (fast to build, export and run)."""
    torch.manual_seed(seed)
    kw = dict(field_sizes=SMALL_FIELDS, embed_dim=4)
    if name == "din":
        kw.update(num_items=60, num_cats=7, hist_len=10, attention=(8, 4), dnn=(16, 8))
    elif name == "dcnv2":
        kw.update(dnn=(16, 16))
    else:
        kw.update(dnn=(16, 8, 8))
    return build_model(name, **kw)


@pytest.fixture
def repo_root():
    return REPO
