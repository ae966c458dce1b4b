"""The tiny random-weight Wan model: built offline, byte for byte the same, loadable by stock diffusers."""
from __future__ import annotations

from pathlib import Path

from engine.wan import tiny


def test_the_tiny_model_builds_byte_identically(tmp_path):
    a, b = tiny.build(tmp_path / "a"), tiny.build(tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert Path("transformer/diffusion_pytorch_model.safetensors") in files
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert sum((a / rel).stat().st_size for rel in files) < 2_000_000


def test_build_tiny_writes_a_loadable_pipeline_and_refuses_a_full_folder(tmp_path, sakuga):
    from diffusers import WanImageToVideoPipeline

    result = sakuga("models", "build-tiny", tmp_path / "tiny")
    assert result.exit_code == 0, result.stderr
    pipe = WanImageToVideoPipeline.from_pretrained(tmp_path / "tiny", local_files_only=True)
    assert pipe.transformer.config.image_dim is not None and pipe.vae.config.z_dim == 4
    again = sakuga("models", "build-tiny", tmp_path / "tiny")
    assert again.exit_code == 2 and f"{tmp_path / 'tiny'}:1:1: error:" in again.stderr
