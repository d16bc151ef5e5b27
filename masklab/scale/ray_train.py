"""The training functions under Ray Train's ``TorchTrainer``, for clusters that run Ray.

Each Ray Train worker is one DDP process: Ray starts the workers (one per GPU with
``gpus_per_worker``), sets up the ``torch.distributed`` process group, and every worker
calls the very function ``torchrun`` runs (``train_semantic``, ``train_instances``), which
finds the group already there (``masklab.distributed.setup``). So sampling, gradient
averaging, merged validation and rank-0 checkpoints are the torchrun run's. ``cfg.out``
must be storage every worker reaches (a shared file system on a multi-node cluster): rank 0
writes checkpoints and logs there, Ray Train its own run records (and a copy of the best
checkpoint, with the final metrics) under ``OUT/ray_train``.
"""

from __future__ import annotations

from pathlib import Path

from masklab.errors import InputError


def _loop(config: dict) -> None:
    import ray.train
    import torch

    cfg = config["cfg"]
    torch.set_num_threads(config["threads"])
    if config["gpu"]:
        import ray.train.torch

        cfg.device = str(ray.train.torch.get_device())
    if config["task"] == "semantic":
        from masklab.tasks.semantic import train_semantic

        r = train_semantic(cfg)
        metrics = {"best": float(r.best_miou), "best_epoch": int(r.best_epoch),
                   "images_per_second": float(r.images_per_second),
                   "epochs": len(r.history)}
        history, best_dir = r.history, r.best_checkpoint
    else:
        from masklab.tasks.instances_train import train_instances

        r = train_instances(cfg)
        metrics = {"best": float(r["best_ap"]), "best_epoch": int(r["best_epoch"]),
                   "images_per_second": float(r["images_per_second"]),
                   "epochs": len(r["history"])}
        history, best_dir = r["history"], r["best_checkpoint"]
    metrics["loss"] = float(history[-1]["loss"]) if history else float("nan")
    # rank 0 hands Ray its best checkpoint with the metrics (Ray Train keeps metrics only
    # with a checkpoint); the other ranks report alongside
    main = ray.train.get_context().get_world_rank() == 0
    ckpt = ray.train.Checkpoint.from_directory(str(best_dir)) if main else None
    ray.train.report(metrics, checkpoint=ckpt)


def train_on_ray(task: str, cfg, *, workers: int, address: str | None = None,
                 gpus_per_worker: float = 0.0) -> dict:
    """``train_semantic(cfg)`` (``task="semantic"``) or ``train_instances(cfg)`` (instances,
    boxes, keypoints) on ``workers`` Ray Train workers (DDP); rank 0's final metrics:
    ``best`` (mIoU or AP), ``best_epoch``, ``images_per_second``, ``epochs``, ``loss``."""
    from masklab.scale.ray_engine import connect, cpus_per_worker

    if workers < 1:
        raise InputError(f"--nproc must be at least 1, got {workers}")
    if cfg.batch_size % workers:
        raise InputError(f"batch size {cfg.batch_size} does not split over {workers} "
                         "processes")
    connect(address, workers)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cpus = cpus_per_worker(workers, gpus_per_worker)
    resources = {"CPU": cpus, **({"GPU": gpus_per_worker} if gpus_per_worker else {})}
    out = Path(cfg.out).resolve()
    trainer = TorchTrainer(
        _loop, train_loop_config={"task": task, "cfg": cfg, "threads": cpus,
                                  "gpu": bool(gpus_per_worker)},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=bool(gpus_per_worker),
                                     resources_per_worker=resources),
        run_config=RunConfig(name="masklab", storage_path=str(out / "ray_train")))
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    return dict(result.metrics or {})
