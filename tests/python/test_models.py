import numpy as np
import pytest
import torch

from clickrt_zoo.export import example_inputs
from clickrt_zoo.models import MODELS, build_model, model_config
from clickrt_zoo.published import CRITEO_KAGGLE_CARDINALITIES, benchmark_field_sizes
from clickrt_zoo.train import TrainConfig, load_checkpoint, save_checkpoint, train
from conftest import MODEL_NAMES, small_model


def as_torch(model, inputs):
    return [torch.from_numpy(inputs[n]) for n in model.input_names]


def test_published_defaults():
    assert len(CRITEO_KAGGLE_CARDINALITIES) == 26
    sizes = benchmark_field_sizes()
    assert max(sizes) == 200_000 and sizes[0] == 1460 and sum(sizes) == 1_483_115
    cfgs = {name: cfg() for name, (_, cfg) in MODELS.items()}
    assert cfgs["deepfm"].embed_dim == 16 and cfgs["deepfm"].dnn == (400, 400, 400)
    assert cfgs["dcnv2"].cross_layers == 3 and cfgs["dcnv2"].dnn == (500, 500, 500)
    assert cfgs["din"].hist_len == 50 and cfgs["din"].attention == (80, 40)
    assert cfgs["din"].dnn == (200, 80)
    assert cfgs["wide_deep"].dnn == (1024, 512, 256)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape(name):
    model = small_model(name).eval()
    for batch in (1, 5):
        out = model(*as_torch(model, example_inputs(model, batch, seed=batch)))
        assert out.shape == (batch, 1)
        assert torch.all((out > 0) & (out < 1))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_out_of_range_ids_read_the_unknown_row(name):
    model = small_model(name).eval()
    inputs = example_inputs(model, 4, seed=1)
    known = {k: v.copy() for k, v in inputs.items()}
    bad = {k: v.copy() for k, v in inputs.items()}
    known["sparse"][:, 0] = 0
    bad["sparse"][:, 0] = [-1, 40, 10**9, -10**9]
    with torch.no_grad():
        a = model(*as_torch(model, known))
        b = model(*as_torch(model, bad))
    assert torch.equal(a, b)


def test_din_ignores_padding():
    model = small_model("din").eval()
    inputs = example_inputs(model, 3, seed=2)
    inputs["hist_items"][:, 5:] = 0
    other = {k: v.copy() for k, v in inputs.items()}
    other["hist_cats"][:, 5:] = 3     # categories under padded items must not matter
    with torch.no_grad():
        assert torch.equal(model(*as_torch(model, inputs)), model(*as_torch(model, other)))


def test_wide_deep_default_crosses_small_fields():
    model = small_model("wide_deep")
    small = [i for i, s in enumerate(model.cfg.field_sizes) if s <= 30]
    assert len(model.cfg.cross_pairs) == len(small) * (len(small) - 1) // 2


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tiny_train_step_and_checkpoint(name, tmp_path):
    model = small_model(name)
    inputs = example_inputs(model, 256, seed=3)
    # a learnable label: depends on the first sparse field
    labels = (inputs["sparse"][:, 0] % 2).astype(np.float32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(model, inputs, labels, inputs, labels,
                   TrainConfig(epochs=3, batch_size=64, lr=1e-2, embedding_lr=0.1, log_every=4),
                   log=lambda s: None)
    assert result.val_auc > 0.6
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint(path, model)
    again = load_checkpoint(path)
    assert model_config(again) == model_config(model)
    x = as_torch(model, example_inputs(model, 4, seed=9))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(*x), again(*x))


def test_build_model_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown config"):
        build_model("deepfm", embedding_dim=8)


def test_din_training_path_matches_inference_path():
    """Training mode splits the first attention layer and trims padding columns; both must
    compute what the exported (eval-mode) graph computes."""
    model = small_model("din")
    inputs = example_inputs(model, 6, seed=4)
    lengths = model.sequence_lengths(inputs)
    x = {k: torch.from_numpy(v) for k, v in inputs.items()}
    model.eval()
    with torch.no_grad():
        want = model.logits(x)
        model.train()
        got = model.logits(x)
        trimmed = model.logits(model.trim_batch(x, lengths.max()))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(trimmed, want, rtol=0, atol=1e-5)
    assert lengths.tolist() == (inputs["hist_items"] > 0).sum(axis=1).tolist()
