from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data {p} not present")
    return p


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own weights cache; nothing touches the user's."""
    monkeypatch.setenv("MASKLAB_HOME", str(tmp_path / "masklab_home"))


def pytest_configure(config):
    """One worker's share of the cores for torch, OpenMP, BLAS and numba, in this process and
    in the processes tests start (CLI runs, servers, Ray and torchrun workers): xdist runs one
    worker per core, and two workers each running two threads on two cores spend much of
    their time waiting for each other (the U-Net learning test took 186 s beside the Mask
    R-CNN one, 22 s alone)."""
    import os

    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return
    share = str(max(1, (os.cpu_count() or 1) // int(workers)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, share)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(int(share))


# The longest tests start first: pytest-xdist hands out tests in collection order, and a
# two-minute test collected near the end would run alone while the other worker idles.
LONGEST_FIRST = ("test_small_mask_rcnn_learns_shapes_to_mask_ap50_of_0_7",
                 "test_training_under_ray_train_equals_one_process",
                 "test_train_keypoints_cli_then_segment",
                 "test_label_on_ray_equals_local_and_resumes_across_engines",
                 "test_unet_learns_shapes_to_miou_08",
                 "test_a_killed_worker_is_retried_and_every_image_appears_once",
                 "test_instances_on_two_processes",
                 "test_segment_instances_with_a_plain_state_dict",
                 "test_segment_panoptic_with_mask2former_then_eval",
                 "test_train_instances_job_and_prelabel_with_it")


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    # stable: the longest in their order, then the rest as collected
    items.sort(key=lambda item: rank.get(item.name.split("[")[0], len(rank)))
