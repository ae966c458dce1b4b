"""Identity without an image encoder: a preset's own QC encoder (`qc_encoder`), on a tiny Wan2.2-shaped model
(no CLIP, no image cross-attention, as AniSora V3.2), and the Wan engine honouring `fit`."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from engine.bank import CharacterBank, cosine
from engine.fit import fit_cover, fit_stretch
from engine.wan import tiny, tiny_wan22
from engine.wan.encoders import fingerprint
from engine.wan.engine import WanEngine
from engine.wan.keyframe_pipeline import keyframe_condition
from engine.wan.options import check_weights
from storyboard.errors import InputError
from storyboard.load import load
from storyboard.plan import build_plan
from storyboard.presets import load_preset
from tests.conftest import make_storyboard

STORYBOARD = """\
sakuga: 1
model: wan-tiny
output: {width: 64, height: 64}
characters:
  hana: {name: Hana, refs: [hana.png]}
scenes:
  - id: s
    shots:
      - {id: a, frames: 9, prompt: "@hana looks up", start: wide.png}
      - {id: b, frames: 9, prompt: "@hana looks up", start: wide.png, fit: stretch}
"""


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sb")
    Image.new("RGB", (80, 60), (240, 200, 210)).save(folder / "hana.png")
    wide = np.zeros((32, 128, 3), np.uint8)
    wide[:, :64], wide[:, 64:] = (220, 30, 30), (30, 30, 220)
    Image.fromarray(wide).save(folder / "wide.png")
    return build_plan(load(make_storyboard(folder, STORYBOARD)))


@pytest.fixture(scope="module")
def base(sakuga_cache):
    return tiny.ensure(sakuga_cache / "models" / "wan-tiny-v2")


@pytest.fixture(scope="module")
def wan22(tmp_path_factory):
    return tiny_wan22.build(tmp_path_factory.mktemp("wan22"))


def variant(name: str, **options):
    preset = load_preset("wan-tiny")
    return preset.model_copy(update={"name": name, "options": {**preset.options, **options}})


def pictures(plan, seg) -> dict:
    return {c.image: np.asarray(Image.open(plan.assets[c.image.ref]).convert("RGB")) for c in seg.conditions}


def hana_bank(engine, plan) -> CharacterBank:
    ch = plan.segment("a.0").characters[0]
    picture = np.asarray(Image.open(plan.assets[ch.refs[0].ref]).convert("RGB"))
    return CharacterBank(engine.encode_characters([(ch.id, ch.refs[0].sha256, picture)]))


def test_a_model_without_an_image_encoder_gets_similarity_figures_from_its_qc_encoder(plan, base, wan22):
    engine = WanEngine(variant("v32-like", build_tiny=False, base=str(wan22), qc_encoder=str(base)))
    assert engine.pipe.image_encoder is None and engine.pipe.transformer.config.image_dim is None
    plain = WanEngine(load_preset("wan-tiny"))
    # the QC encoder is the tiny Wan2.1's own CLIP: one fingerprint, so bank rows are shared across the presets
    assert engine.encoder_id == plain.encoder_id == fingerprint(plain.pipe.image_encoder)
    engine.use_bank(hana_bank(engine, plan))
    seg = plan.segment("a.0")
    seen = []
    hook = engine.pipe.transformer.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs.get("encoder_hidden_states_image")), with_kwargs=True)
    try:
        out = engine.render(seg, pictures(plan, seg))
    finally:
        hook.remove()
    assert seen and all(s is None for s in seen)          # no image embeddings reach a Wan2.2 transformer
    _, vectors = plain.encode_pictures(list(out.frames[[0, 3, 5, 8]]))
    _, hana = engine.bank.character("hana", engine.encoder_id)
    # float64 reference as engine.bank.cosine computes it; 1e-6 for float32 noise in the vectors (see
    # test_engine.py's similarity test for the reasoning)
    assert out.metrics["character_similarity.hana"] == pytest.approx(cosine(hana, vectors.mean(axis=0)), abs=1e-6)


def test_without_a_qc_encoder_such_a_model_has_no_bank_and_no_figures(plan, wan22, monkeypatch):
    monkeypatch.delenv("SAKUGA_QC_ENCODER", raising=False)
    engine = WanEngine(variant("v32-bare", build_tiny=False, base=str(wan22), qc_encoder="${SAKUGA_QC_ENCODER}"))
    assert engine.encoder_id is None and engine.encode_characters([("hana", "x", np.zeros((8, 8, 3), np.uint8))]) == []
    seg = plan.segment("a.0")
    assert engine.render(seg, pictures(plan, seg)).metrics == {}


def clip_with_projection(folder):
    """A tiny CLIP vision encoder with a projection (other weights than the tiny Wan's) and its processor."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(7)
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        patch_size=8, projection_dim=8)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_a_qc_encoder_other_than_the_pipelines_measures_while_the_pipelines_still_steers(plan, tmp_path):
    engine = WanEngine(variant("wan-tiny-qc", qc_encoder=str(clip_with_projection(tmp_path / "clip"))))
    steer, qc = engine.encoders.steer, engine.encoders.qc
    assert engine.encoder_id == f"{steer.id}+{qc.id}" and qc.id.startswith("CLIPVisionModelWithProjection-")
    [row] = hana_bank(engine, plan).rows.values()
    picture = np.asarray(Image.open(plan.assets["hana.png"]).convert("RGB"))
    # the row's tokens are what image cross-attention reads (the pipeline's CLIP), its vector the QC encoder's
    assert np.array_equal(row.tokens, steer.encode([picture])[0][0])
    assert row.vector.shape == (8,) and np.array_equal(row.vector, qc.encode([picture])[1][0])


def test_a_qc_encoder_that_is_not_a_clip_folder_is_refused_naming_the_option(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as caught:
        check_weights(variant("wan-tiny", qc_encoder=str(tmp_path / "empty")))
    [problem] = caught.value.problems
    assert "options.qc_encoder" in problem.message and "is not a CLIP vision folder" in problem.message


def test_the_wan_engine_fits_condition_pictures_by_the_segments_policy(plan):
    engine = WanEngine(load_preset("wan-tiny"))
    cover, stretch = plan.segment("a.0"), plan.segment("b.0")
    assert (cover.fit, stretch.fit) == ("cover", "stretch")
    wide = next(iter(pictures(plan, cover).values()))
    for seg, fit in ((cover, fit_cover), (stretch, fit_stretch)):
        picture = torch.from_numpy(fit(wide, 64, 64)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)
        with torch.no_grad():
            expected = keyframe_condition(engine.pipe, [(0, picture)], seg.frames, 64, 64)
        # the same picture bytes through the same VAE encode: exactly equal
        assert torch.equal(engine.conditions(seg, pictures(plan, seg)).condition, expected)
    assert not torch.equal(engine.conditions(cover, pictures(plan, cover)).condition,
                           engine.conditions(replace(cover, fit="stretch"), pictures(plan, cover)).condition)
