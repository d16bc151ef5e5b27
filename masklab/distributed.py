"""Training on many processes with ``torch.distributed`` (DDP).

A training function calls ``setup(device)``: under ``torchrun`` (``WORLD_SIZE`` > 1) it joins
the process group (gloo on CPUs, NCCL on GPUs, one GPU per local rank) and returns this
process's rank and the world size; in a Ray Train worker the group is already there and is
used as it is (``masklab.scale.ray_train``); elsewhere it returns ``(0, 1)`` and does
nothing. The
``launch`` helper re-runs a ``masklab`` command under ``torchrun --standalone`` for
``--nproc N``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch

from masklab.errors import InputError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group (and destroy it at the end)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group when launched by ``torchrun``, or use the one already set up
    (Ray Train's ``TorchTrainer`` workers); the device of this rank."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # Ray Train (or the caller) set it up
        world, rank = dist.get_world_size(), dist.get_rank()
        if world <= 1:
            return Dist(), device
        local = int(os.environ.get("LOCAL_RANK", rank))
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return Dist(rank, world, local, False), device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    return Dist(rank, world, local, owns), device


def teardown(d: Dist) -> None:
    import torch.distributed as dist

    if d.active and dist.is_initialized():
        dist.barrier()
        if d.owns_group:
            dist.destroy_process_group()


def all_sum(d: Dist, values):
    """Element-wise sum over ranks of a float/int array (returned as a numpy array)."""
    import numpy as np
    import torch.distributed as dist

    arr = np.asarray(values)
    if not d.active:
        return arr
    t = torch.as_tensor(arr.astype(np.float64) if arr.dtype.kind == "f" else
                        arr.astype(np.int64))
    dist.all_reduce(t)
    return t.numpy()


def broadcast_buffers(d: Dist, module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank: DDP syncs them at the
    start of each training forward only, so after the last step each rank holds its own;
    validation and checkpoints must all use rank 0's."""
    import torch.distributed as dist

    if d.active:
        for b in module.buffers():
            dist.broadcast(b.data, 0)


def barrier(d: Dist) -> None:
    import torch.distributed as dist

    if d.active:
        dist.barrier()


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``masklab ARGV`` on ``nproc`` local processes (``torchrun --standalone``); the
    exit code of the run."""
    if nproc < 1:
        raise InputError(f"--nproc must be at least 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "masklab.cli", *argv]
    return subprocess.call(cmd)
