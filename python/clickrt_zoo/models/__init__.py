"""The model zoo: name -> (model class, config class)."""
from dataclasses import asdict, fields

from .dcnv2 import DCNv2, DCNv2Config
from .deepfm import DeepFM, DeepFMConfig
from .din import DIN, DINConfig
from .layers import CTRModel
from .wide_deep import WideDeep, WideDeepConfig

MODELS = {
    "deepfm": (DeepFM, DeepFMConfig),
    "dcnv2": (DCNv2, DCNv2Config),
    "din": (DIN, DINConfig),
    "wide_deep": (WideDeep, WideDeepConfig),
}


def build_model(name: str, **config) -> CTRModel:
    """Builds zoo model `name`; keyword arguments override the published defaults."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    cls, cfg_cls = MODELS[name]
    known = {f.name for f in fields(cfg_cls)}
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"{name}: unknown config keys {sorted(unknown)}; known {sorted(known)}")
    for key, value in config.items():
        if isinstance(value, list):
            config[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return cls(cfg_cls(**config))


def model_config(model: CTRModel) -> dict:
    """The model's config as plain JSON-able data (what build_model takes back)."""
    return asdict(model.cfg)


__all__ = ["MODELS", "CTRModel", "build_model", "model_config"]
