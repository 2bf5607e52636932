"""The ``embedding:`` section validates every field and names it."""

import pytest

from models.encoders.embedding_config import EmbeddingConfig


@pytest.mark.parametrize(("over", "message"), [
    ({"batch_size": 0}, "batch_size=0"), ({"model": ""}, "embedding.model"),
    ({"normalize": "yes"}, "normalize"), ({"max_seq_length": 0}, "max_seq_length"),
    ({"backend": "tensorrt"}, r"embedding.backend='tensorrt'; allowed \['torch', 'onnx', 'openvino'\]"),
    ({"precision": "fp16"}, "embedding.precision='fp16'"),
])
def test_bad_config_is_rejected(over, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingConfig(**over)
