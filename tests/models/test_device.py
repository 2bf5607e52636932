"""Device, dtype and thread choices made at run time from the config and the machine."""

import pytest
import torch

from models.device import auto_threads, autocast_dtype, cpu_has_native_bf16, resolve_device, torch_threads


def test_auto_is_cpu_without_cuda_and_a_missing_cuda_is_named():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; tests/models/test_gpu.py covers it")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda' was requested but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="'tpu' is not a torch device"):
        resolve_device("tpu")


def test_precision_follows_the_cpu_flags_and_an_unknown_one_is_refused():
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None and autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) is (torch.bfloat16 if cpu_has_native_bf16() else None)
    with pytest.raises(ValueError, match="precision='fp16'"):
        autocast_dtype("fp16", cpu)


def test_torch_threads_sets_the_count_and_restores_it_even_on_error():
    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(0) as n:
        assert n == auto_threads() == torch.get_num_threads()
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
