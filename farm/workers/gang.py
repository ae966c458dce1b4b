"""Gangs: k GPU workers of one node rendering one segment together as a torch.distributed group.

The driver does the rendezvous: rank 0's worker names its address and a free port, and each member
is told (`GangSpec`) its rank, the world size and where to meet. A worker belongs to one group at a
time (`Membership`); a gang whose members are still together from an earlier segment keeps its group,
any other composition builds a new one. Collectives have a timeout, so a member that dies makes the
others fail instead of hanging; the driver then replaces the whole gang.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import timedelta

import ray

COLLECTIVE_TIMEOUT_S = 300.0   # a member gone quiet for this long fails the gang's attempt


@dataclass(frozen=True)
class GangSpec:
    tag: str          # names this group: members with the same tag are already joined together
    rank: int
    world: int
    host: str
    port: int
    timeout_s: float = COLLECTIVE_TIMEOUT_S


def free_address() -> tuple[str, int]:
    """This node's address and a port free right now (rank 0 listens on it for the rendezvous)."""
    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    return ray.util.get_node_ip_address(), port


class Membership:
    """The torch.distributed group this process is in (at most one: the default group)."""

    def __init__(self) -> None:
        self.tag: str | None = None

    def ensure(self, spec: GangSpec) -> str:
        """Join the gang `spec` names, leaving any other group first; returns the backend."""
        import torch
        import torch.distributed as dist

        if spec.tag != self.tag:
            self.leave()
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend, init_method=f"tcp://{spec.host}:{spec.port}", rank=spec.rank,
                                    world_size=spec.world, timeout=timedelta(seconds=spec.timeout_s))
            self.tag = spec.tag
        return dist.get_backend()

    def leave(self) -> None:
        import torch.distributed as dist

        from engine.parallel import xfuser_sp

        xfuser_sp.reset()   # its subgroups live inside the group being left
        if dist.is_initialized():
            dist.destroy_process_group()
        self.tag = None


def specs(tag: str, world: int, host: str, port: int, timeout_s: float = COLLECTIVE_TIMEOUT_S) -> list[GangSpec]:
    return [GangSpec(tag, rank, world, host, port, timeout_s) for rank in range(world)]


def agreed(value, world: int) -> list:
    """Every member's `value` (a small picklable one), gathered in this gang's group."""
    import torch.distributed as dist

    values = [None] * world
    dist.all_gather_object(values, value)
    return values
