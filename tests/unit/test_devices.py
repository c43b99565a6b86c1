from sparkdl.training.launch.devices import select_device


def test_no_gpu_assigned_means_cpu_without_a_note():
    assert select_device({}, cuda_available=True, device_count=2, nccl_built=True) == ("cpu", None)


def test_assigned_gpu_is_used_when_torch_and_horovod_can():
    assert select_device({"gpu": ["1"]}, True, 2, True) == ("cuda:1", None)


def test_only_visible_gpu_is_renumbered_zero():
    assert select_device({"gpu": ["3"]}, True, 1, True)[0] == "cuda:0"


def test_fallbacks_explain_themselves():
    dev, note = select_device({"gpu": ["0"]}, False, 0, True)
    assert dev == "cpu" and "no CUDA device" in note
    dev, note = select_device({"gpu": ["0"]}, True, 1, False)
    assert dev == "cpu" and "without NCCL" in note and "SPARKDL_HOROVOD_GPU=nccl" in note
