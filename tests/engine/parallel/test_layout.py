"""How a gang shares one attention call: Ulysses and ring degrees, uneven token counts."""
from __future__ import annotations

from engine.parallel.layout import Layout, layout, split


def test_ulysses_takes_the_heads_it_divides_inside_a_node_and_ring_the_rest():
    assert split(8, 40) == (8, 1)            # Wan-14B, one node of 8
    assert split(8, 12) == (4, 2)            # Wan-1.3B: 12 heads, 8 does not divide them
    assert split(16, 40, per_node=8) == (8, 2)
    assert split(4, 2) == (2, 2)


def test_an_uneven_token_count_takes_pure_ulysses_or_pure_ring():
    assert layout(4, 40, 32760) == Layout(4, 1)                 # 480p: divides
    assert layout(4, 40, 75) == Layout(4, 1, uneven=True)       # diffusers pads Ulysses shares
    assert layout(4, 2, 75) == Layout(1, 4, uneven=True)        # 2 heads: hybrid cannot pad, ring can
    assert layout(4, 2, 76) == Layout(2, 2)
