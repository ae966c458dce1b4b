"""`sakuga selftest sp`: the real sequence-parallel path across a gang of farm workers, against one
process."""
from __future__ import annotations

from typing import Annotated

import typer

from storyboard.errors import InputError

app = typer.Typer(no_args_is_help=True, help="Check the parallel paths against one process.")


def _latent(text: str) -> tuple[int, int, int]:
    try:
        size = tuple(int(x) for x in text.lower().split("x"))
        if len(size) != 3 or min(size) < 1 or size[1] % 2 or size[2] % 2 or max(size) > 64:
            raise ValueError
    except ValueError:
        raise InputError.single("--latent", f"{text!r} is not FxHxW with even H and W, each 1..64") from None
    return size


@app.command("sp")
def selftest_sp(
    world: Annotated[int, typer.Option("--world", min=1, max=64, help="Gang size (processes, logical GPUs on CPU).")] = 2,
    ulysses: Annotated[int, typer.Option("--ulysses", min=1, max=64, help="Ulysses degree.")] = 2,
    ring: Annotated[int, typer.Option("--ring", min=1, max=64, help="Ring degree.")] = 1,
    latent: Annotated[str, typer.Option("--latent", help="Latent frames x height x width (tokens = F*H*W/4).")] = "5x16x16",
    tolerance: Annotated[float, typer.Option("--tolerance", help="Largest accepted absolute difference.")] = 1e-5,
    backend: Annotated[str, typer.Option("--backend", help="diffusers, or xfuser (GPU only; bf16 kernels: "
                                                           "loosen --tolerance).")] = "diffusers",
) -> None:
    """Run the tiny Wan transformer (fp32) sharded over a gang of WORLD farm workers (Ray actors in a
    placement group, one torch.distributed group) and compare with one process; the last line is
    max_abs_err=<float>."""
    if ulysses * ring != world:
        raise InputError.single("--world", f"--ulysses {ulysses} x --ring {ring} = {ulysses * ring}, not --world {world}")
    size = _latent(latent)
    tokens = size[0] * size[1] * size[2] // 4
    if backend not in ("diffusers", "xfuser"):
        raise InputError.single("--backend", f"{backend!r} is not diffusers or xfuser")
    if backend == "xfuser":
        from engine.parallel.xfuser_sp import unavailable

        why = unavailable()
        if why:
            raise InputError.single("--backend", why)
    if tokens % world and ulysses > 1 and ring > 1:
        raise InputError.single("--latent", f"{tokens} tokens do not divide by {world}: uneven shares need pure "
                                            "Ulysses or pure ring (diffusers pads those, not both at once)")
    import numpy as np

    from engine.parallel.selftest import forward, selftest_case
    from farm.workers.selftest import sharded_forward

    transformer, inputs = selftest_case(ulysses, 0, size)
    reference = forward(transformer, inputs).numpy()
    out = sharded_forward(world, ulysses, ring, size, backend)
    err = float(np.abs(out - reference).max())
    typer.echo(f"world {world} = ulysses {ulysses} x ring {ring}, {tokens} tokens"
               f"{' (uneven shares, padded)' if tokens % world else ''}; output {tuple(out.shape)}")
    typer.echo(f"max_abs_err={err:.3e}")
    raise typer.Exit(0 if err <= tolerance else 1)
