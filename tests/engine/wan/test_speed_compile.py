"""Regional compilation of the tiny Wan transformer where torch.compile can build kernels (a C++ compiler on
a CPU). Its own file: inductor's first compile alone takes 15-45 s on the 2-core machine."""
from __future__ import annotations

import pytest
import torch

from engine.wan.speed import compile_unavailable
from tests.engine.wan.test_speed import engine_with, transformer_inputs


@pytest.mark.skipif(compile_unavailable(torch.device("cpu")) is not None, reason="no C++ compiler for torch.compile")
def test_compile_compiles_the_repeated_blocks_and_keeps_their_output():
    engine = engine_with(compile=True)
    transformer = engine.pipe.transformer
    assert engine.speed.applied.compiled
    assert all(b._compiled_call_impl is not None for b in transformer.blocks)
    eager = engine_with().pipe.transformer                   # the same weights (the tiny model is seeded)
    with torch.no_grad():
        compiled_out = transformer(**transformer_inputs(transformer))[0]
        eager_out = eager(**transformer_inputs(eager))[0]
    # inductor fuses and reorders float32 arithmetic: rounding only (|out| ~ 1)
    assert not torch.equal(compiled_out, torch.zeros_like(compiled_out))
    assert torch.allclose(compiled_out, eager_out, atol=1e-4)
