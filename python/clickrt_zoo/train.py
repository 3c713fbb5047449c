"""Training on CPU: seeded, mini-batch Adam (or Adagrad), progress lines with rows/s, AUC and
log loss on the held-out split after each epoch, checkpoints as torch.save'd dicts."""
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List

import numpy as np
import torch
from torch import nn

from .metrics import auc, logloss
from .models import CTRModel, build_model, model_config


@dataclass
class TrainConfig:
    epochs: int = 1
    batch_size: int = 1024
    lr: float = 1e-3
    optimizer: str = "adam"          # adam | adagrad
    weight_decay: float = 0.0        # L2 on the dense (non-embedding) parameters
    embedding_lr: float = 0.05       # embeddings: Adagrad, the usual choice for sparse rows
    embedding_weight_decay: float = 3e-4
    seed: int = 0
    log_every: int = 100             # steps between progress lines
    eval_batch_size: int = 8192


@dataclass
class TrainResult:
    val_auc: float = float("nan")
    val_logloss: float = float("nan")
    seconds: float = 0.0
    history: List[dict] = field(default_factory=list)


def predict(model: CTRModel, inputs: Dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
    """Click probabilities [rows] for numpy inputs."""
    model.eval()
    n = len(next(iter(inputs.values())))
    out = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            args = [torch.from_numpy(inputs[name][start:start + batch_size])
                    for name in model.input_names]
            out.append(model(*args).reshape(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> "MultiOptimizer":
    """Adagrad with L2 for the embedding tables; `cfg.optimizer` for everything else."""
    emb_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    emb = [p for p in model.parameters() if id(p) in emb_ids]
    rest = [p for p in model.parameters() if id(p) not in emb_ids]
    opts = [torch.optim.Adagrad(emb, lr=cfg.embedding_lr, weight_decay=cfg.embedding_weight_decay)]
    if rest:
        if cfg.optimizer == "adam":
            opts.append(torch.optim.Adam(rest, lr=cfg.lr, weight_decay=cfg.weight_decay))
        elif cfg.optimizer == "adagrad":
            opts.append(torch.optim.Adagrad(rest, lr=cfg.lr, weight_decay=cfg.weight_decay))
        else:
            raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adam or adagrad)")
    return MultiOptimizer(opts)


class MultiOptimizer:
    def __init__(self, optimizers):
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True):
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self):
        for opt in self.optimizers:
            opt.step()


def _batches(n: int, batch_size: int, gen: torch.Generator, lengths=None) -> list:
    """Row indices of each batch of a shuffled epoch. With sequence lengths, rows are grouped
    by length within windows of 32 batches (and the batches shuffled), so that a batch can
    drop the padding columns all its rows share."""
    order = torch.randperm(n, generator=gen)
    if lengths is None:
        return list(torch.split(order, batch_size))
    window = batch_size * 32
    batches = []
    for chunk in torch.split(order, window):
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches.extend(torch.split(chunk, batch_size))
    perm = torch.randperm(len(batches), generator=gen)
    return [batches[i] for i in perm]


def train(model: CTRModel, train_inputs: Dict[str, np.ndarray], train_labels: np.ndarray,
          val_inputs: Dict[str, np.ndarray], val_labels: np.ndarray, cfg: TrainConfig,
          log: Callable[[str], None] = print) -> TrainResult:
    torch.manual_seed(cfg.seed)
    opt = make_optimizer(model, cfg)
    loss_fn = nn.BCEWithLogitsLoss()
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in train_inputs.items()}
    labels = torch.from_numpy(np.asarray(train_labels, np.float32)).reshape(-1, 1)
    n = labels.shape[0]
    gen = torch.Generator().manual_seed(cfg.seed)
    result = TrainResult()
    start = time.time()
    lengths = None
    if hasattr(model, "sequence_lengths"):
        lengths = torch.from_numpy(model.sequence_lengths(train_inputs))
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        batches = _batches(n, cfg.batch_size, gen, lengths)
        t0, rows, loss_sum, loss_rows = time.time(), 0, 0.0, 0
        for step, idx in enumerate(batches):
            batch = {k: v[idx] for k, v in tensors.items()}
            if lengths is not None:
                batch = model.trim_batch(batch, int(lengths[idx].max()))
            logits = model.logits(batch)
            loss = loss_fn(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            rows += len(idx)
            loss_sum += float(loss) * len(idx)
            loss_rows += len(idx)
            if (step + 1) % cfg.log_every == 0 or step + 1 == len(batches):
                elapsed = time.time() - t0
                log(f"epoch {epoch} step {step + 1}/{len(batches)}  train logloss "
                    f"{loss_sum / loss_rows:.4f}  {rows / max(elapsed, 1e-9):,.0f} rows/s")
                loss_sum, loss_rows = 0.0, 0
        probs = predict(model, val_inputs, cfg.eval_batch_size)
        result.val_auc = auc(val_labels, probs)
        result.val_logloss = logloss(val_labels, probs)
        result.history.append({"epoch": epoch, "val_auc": result.val_auc,
                               "val_logloss": result.val_logloss})
        log(f"epoch {epoch} done in {time.time() - t0:.1f}s  val AUC {result.val_auc:.4f}  "
            f"val logloss {result.val_logloss:.4f}")
    result.seconds = time.time() - start
    return result


def save_checkpoint(path: str, model: CTRModel, extra: dict = None) -> None:
    torch.save({"model": model.name, "config": model_config(model),
                "state_dict": model.state_dict(), **(extra or {})}, path)


def load_checkpoint(path: str) -> CTRModel:
    ckpt = torch.load(path, map_location="cpu")
    model = build_model(ckpt["model"], **ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model
