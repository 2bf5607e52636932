"""Item text embeddings and the per-domain sequence encoders that LGCD conditions on."""
