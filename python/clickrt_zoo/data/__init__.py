"""Data: readers for Criteo TSV (criteo.py) and Avazu CSV (avazu.py), token encodings
(encoding.py), the feature schema (schema.py) and the synthetic generator (synthetic.py)."""
