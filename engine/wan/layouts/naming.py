"""Wan's names and diffusers' names for the same transformer: the one place they are translated.

Tensor names go through diffusers' own `convert_wan_transformer_to_diffusers` (applied to the names
alone, so nothing is read); which naming a file uses is told by its tensor names. Configs go through
`diffusers_config`: Wan's `config.json` (`dim`, `num_heads`, `in_dim`, `model_type`...) in
`WanTransformer3DModel`'s terms.
"""
from __future__ import annotations

import re

WAN, DIFFUSERS = "wan", "diffusers"
COMFY_PREFIX = "model.diffusion_model."    # ComfyUI-style files put the transformer under this prefix
_WAN_KEY = re.compile(r"^(blocks\.\d+\.(self_attn\.|cross_attn\.|ffn\.\d)|head\.head\.|text_embedding\.|time_projection\.)")
_DIFFUSERS_KEY = re.compile(r"^(blocks\.\d+\.(attn1|attn2|ffn\.net)\.|condition_embedder\.|proj_out\.|scale_shift_table$)")
# Wan's WanModel keeps these out of config.json (`ignore_for_config`); its defaults are diffusers' too
_WAN_DEFAULTS = {"patch_size": [1, 2, 2], "text_dim": 4096, "eps": 1e-6, "qk_norm": True, "cross_attn_norm": True}
WAN_CONFIG_KEYS = ("dim", "ffn_dim", "freq_dim", "in_dim", "model_type", "num_heads", "num_layers", "out_dim")


def naming(names) -> str | None:
    """WAN or DIFFUSERS by the tensor names (the prefix of ComfyUI-style files ignored); None when
    neither (not a Wan transformer, or both at once)."""
    stripped = [n.removeprefix(COMFY_PREFIX) for n in names]
    wan = any(_WAN_KEY.match(n) for n in stripped)
    diffusers = any(_DIFFUSERS_KEY.match(n) for n in stripped)
    if wan == diffusers:
        return None
    return WAN if wan else DIFFUSERS


def to_diffusers(names, file_naming: str) -> dict[str, str]:
    """{diffusers name: name in the file} for every tensor name of a file of the given naming."""
    if file_naming == DIFFUSERS:
        return {n.removeprefix(COMFY_PREFIX): n for n in names}
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    # the converter renames keys and moves their values: the values here are the original names
    renamed = convert_wan_transformer_to_diffusers({n: n for n in names})
    return {new: old for new, old in renamed.items()}


def is_wan_config(config: dict) -> bool:
    return "dim" in config and "num_heads" in config and "num_attention_heads" not in config


def diffusers_config(wan: dict, image_dim: int | None) -> dict:
    """Wan's transformer config in `WanTransformer3DModel`'s terms. `image_dim` is the width of the CLIP
    features the image cross-attention takes (Wan2.1 image-to-video: 1280), None for transformers
    without one; Wan's config says `model_type: i2v` for both Wan2.1 (which has it) and Wan2.2 (which has
    not), so the caller reads it off the tensors (`img_emb.proj.0.weight`)."""
    cfg = {**_WAN_DEFAULTS, **wan}
    dim, heads = int(cfg["dim"]), int(cfg["num_heads"])
    return {
        "_class_name": "WanTransformer3DModel",
        "patch_size": list(cfg["patch_size"]),
        "num_attention_heads": heads,
        "attention_head_dim": dim // heads,
        "in_channels": int(cfg["in_dim"]),
        "out_channels": int(cfg["out_dim"]),
        "text_dim": int(cfg["text_dim"]),
        "freq_dim": int(cfg["freq_dim"]),
        "ffn_dim": int(cfg["ffn_dim"]),
        "num_layers": int(cfg["num_layers"]),
        "cross_attn_norm": bool(cfg["cross_attn_norm"]),
        "qk_norm": "rms_norm_across_heads" if cfg["qk_norm"] else None,
        "eps": float(cfg["eps"]),
        "image_dim": image_dim,
        "added_kv_proj_dim": dim if image_dim is not None else None,
        "rope_max_seq_len": 1024,
    }


def wan_config_problem(wan: dict) -> str | None:
    """What a Wan-format config.json lacks or gets wrong, in its own field names."""
    lacking = [k for k in WAN_CONFIG_KEYS if k not in wan]
    if lacking:
        return f"Wan config.json lacks {', '.join(lacking)}"
    if wan["model_type"] not in ("t2v", "i2v", "ti2v"):
        return f"Wan config.json: model_type {wan['model_type']!r} is none of t2v, i2v, ti2v"
    try:
        if int(wan["dim"]) % int(wan["num_heads"]):
            return f"Wan config.json: dim {wan['dim']} does not divide into num_heads {wan['num_heads']}"
    except (TypeError, ValueError, ZeroDivisionError):
        return f"Wan config.json: dim {wan['dim']!r} and num_heads {wan['num_heads']!r} must be whole numbers"
    return None


# Architecture fields compared with the base folder's transformer (the pipeline's other parts depend on
# them, and the preset's attention heads and memory figures were written for them)
ARCHITECTURE = ("num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "text_dim", "freq_dim",
                "ffn_dim", "num_layers", "image_dim", "added_kv_proj_dim", "patch_size")


def disagreements(own: dict, base: dict) -> list[str]:
    """Fields where a transformer's own config and the base's transformer config differ, worded."""
    out = []
    for key in ARCHITECTURE:
        mine, theirs = own.get(key), base.get(key)
        if isinstance(mine, tuple | list) or isinstance(theirs, tuple | list):
            mine, theirs = list(mine or []), list(theirs or [])
        if mine != theirs:
            out.append(f"{key} {mine} (base: {theirs})")
    return out


# diffusers' renaming rules read backwards (diffusers part -> Wan part), applied in this order: the image
# embedder first (its `norm2` must not meet the norm2/norm3 swap), then the swap through a placeholder.
_TO_WAN = [
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("norm3", "norm__placeholder"), ("norm2", "norm3"), ("norm__placeholder", "norm2"),
    ("ffn.net.2", "ffn.2"), ("ffn.net.0.proj", "ffn.0"),
    ("scale_shift_table", "modulation"), ("proj_out", "head.head"),
    (".norm_added_k.", ".norm_k_img."), (".add_v_proj.", ".v_img."), (".add_k_proj.", ".k_img."),
    (".to_v.", ".v."), (".to_k.", ".k."), (".to_q.", ".q."), (".to_out.0.", ".o."),
    ("attn1", "self_attn"), ("attn2", "cross_attn"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
]


def to_wan(names) -> dict[str, str]:
    """{Wan name: diffusers name}, for writing Wan-format checkpoints (tests, benches). Checked against
    diffusers' own conversion: every name must come back as it went in."""
    def one(name: str) -> str:
        for diffusers_part, wan_part in _TO_WAN:
            name = name.replace(diffusers_part, wan_part)
        return "head.modulation" if name == "modulation" else name

    out = {one(n): n for n in names}
    back = to_diffusers(list(out), WAN)
    wrong = [n for w, n in out.items() if back.get(n) != w]
    if wrong:
        raise ValueError(f"no Wan name for {wrong[:3]}")
    return out


def wan_config(config: dict) -> dict:
    """A diffusers transformer config as Wan's `config.json` (the inverse of `diffusers_config`)."""
    return {"_class_name": "WanModel", "_diffusers_version": "0.30.0",
            "dim": config["num_attention_heads"] * config["attention_head_dim"], "eps": config["eps"],
            "ffn_dim": config["ffn_dim"], "freq_dim": config["freq_dim"], "in_dim": config["in_channels"],
            "model_type": "i2v" if config["in_channels"] != config["out_channels"] else "t2v",
            "num_heads": config["num_attention_heads"], "num_layers": config["num_layers"],
            "out_dim": config["out_channels"], "text_len": 512, "text_dim": config["text_dim"]}
