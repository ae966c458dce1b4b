"""The xfuser (xDiT) attention backend: refused clearly without a GPU, matching one process on GPUs."""
from __future__ import annotations

import pytest
import torch
import yaml

from tests.engine.parallel.test_sharding import ROOT, selftest

XFUSER_MISSING = "xfuser cannot be imported without a GPU (and needs the gpu extra)"


def xfuser_importable() -> bool:
    from engine.parallel.xfuser_sp import unavailable

    return unavailable() is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without GPUs gives")
def test_the_xfuser_backend_is_refused_clearly_without_a_gpu(tmp_path, sakuga, monkeypatch):
    result = selftest("--world", "2", "--backend", "xfuser")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "xfuser needs CUDA GPUs" in result.stderr
    data = yaml.safe_load((ROOT / "configs" / "models" / "wan-tiny.yaml").read_text())
    data["name"] = "wan-tiny-xdit"
    data["options"]["sp_backend"] = "xfuser"
    (tmp_path / "wan-tiny-xdit.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("SAKUGA_MODELS", str(tmp_path))
    (tmp_path / "sb.yaml").write_text("sakuga: 1\ntitle: X\nmodel: wan-tiny-xdit\n"
                                      "scenes: [{id: one, shots: [{id: a, frames: 17, prompt: sky}]}]\n")
    result = sakuga("render", tmp_path / "sb.yaml", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "wan-tiny-xdit.yaml" in result.stderr and "options.sp_backend: xfuser needs CUDA GPUs" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not xfuser_importable(), reason=XFUSER_MISSING)
def test_xfuser_attention_matches_one_process_on_gpus():
    result = selftest("--world", "2", "--ulysses", "2", "--ring", "1", "--backend", "xfuser", "--tolerance", "2e-2")
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
