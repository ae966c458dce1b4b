"""Gangs: k worker actors on one node forming one torch.distributed group for sequence parallelism.

The actors are placed together by a STRICT_PACK placement group (one GPU bundle each). The driver
does the rendezvous: rank 0 names an address and a free port, then every member joins the group
(NCCL on GPUs, gloo on CPU) with a timeout on collectives, so a member that dies makes the others'
calls fail instead of hanging. A gang is kept for many segments and torn down as a whole.
"""
from __future__ import annotations

import socket
from datetime import timedelta

import numpy as np
import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@ray.remote(num_cpus=0)
class GangMember:
    def __init__(self, rank: int, world: int, threads: int | None = None):
        self.rank, self.world = rank, world
        if threads:
            import torch

            torch.set_num_threads(threads)

    def address(self) -> tuple[str, int]:
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def join(self, host: str, port: int, timeout_s: float) -> str:
        import torch
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=self.rank,
                                world_size=self.world, timeout=timedelta(seconds=timeout_s))
        return backend

    def transformer_selftest(self, ulysses: int, ring: int, seed: int) -> np.ndarray | None:
        """The tiny Wan transformer's output with its attention sharded over the gang (rank 0 returns it)."""
        from engine import sp

        transformer, inputs = sp.selftest_case(ulysses, seed)
        sp.enable(transformer, ulysses, ring)
        out = sp.forward(transformer, inputs)
        return out.numpy() if self.rank == 0 else None

    def leave(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


class Gang:
    def __init__(self, degree: int, *, timeout_s: float = 120.0, threads: int | None = None):
        self.degree = degree
        self.group = placement_group([{"GPU": 1}] * degree, strategy="STRICT_PACK")
        ray.get(self.group.ready(), timeout=timeout_s)
        self.members = [
            GangMember.options(num_gpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(
                self.group, placement_group_bundle_index=rank)).remote(rank, degree, threads)
            for rank in range(degree)]
        host, port = ray.get(self.members[0].address.remote(), timeout=timeout_s)
        self.backend = ray.get([m.join.remote(host, port, timeout_s) for m in self.members], timeout=timeout_s)[0]

    def call(self, method: str, *args, timeout_s: float | None = None) -> list:
        """Run `method` on every member at once (a collective step) and return their results by rank."""
        return ray.get([getattr(m, method).remote(*args) for m in self.members], timeout=timeout_s)

    def shutdown(self) -> None:
        for m in self.members:
            ray.kill(m, no_restart=True)
        remove_placement_group(self.group)
