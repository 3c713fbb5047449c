"""clickrt's model zoo: CTR models in PyTorch, data readers, synthetic data, training and
ONNX export for the clickrt inference compiler. See python/README.md."""
