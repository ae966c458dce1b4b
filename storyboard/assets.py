"""Files a storyboard refers to: where a written path leads, and whether the file there decodes.

A relative path must stay inside the storyboard's folder (links included); an absolute one must lie
under an `--asset-root`. Pictures must decode with Pillow and soundtracks with PyAV, within size limits.
Each written path is checked once; what passes becomes an `Asset` with the sha256 of its bytes.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_IMAGE_SIDE = 8192
MAX_AUDIO_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Asset:
    path: Path      # resolved, inside the storyboard folder or an asset root
    sha256: str


class AssetFiles:
    """The files of one storyboard: `check` each written path, then `assets` holds those that passed."""

    def __init__(self, base: Path, asset_roots: list[Path]):
        self.base = base
        self.roots = [Path(os.path.realpath(r)) for r in asset_roots]
        self.assets: dict[str, Asset] = {}
        self._checked: dict[str, str | None] = {}  # written path → error message or None

    def check(self, written: str, kind: str) -> str | None:
        """What is wrong with the `kind` ("image" or "audio") file written as `written`; None if nothing."""
        if written not in self._checked:
            self._checked[written] = self._check_file(written, kind)
        return self._checked[written]

    def _allowed(self, real: Path) -> bool:
        return real.is_relative_to(self.base) or any(real.is_relative_to(r) for r in self.roots)

    def resolve(self, written: str) -> tuple[Path | None, str | None]:
        if "\0" in written:
            return None, f"path {written!r} contains a NUL character"
        p = Path(written)
        if p.is_absolute():
            real = Path(os.path.realpath(p))
            if not self.roots:
                return None, (f"absolute path {written!r}: write it relative to the storyboard's folder, "
                              f"or allow its folder with --asset-root")
            if not any(real.is_relative_to(r) for r in self.roots):
                return None, f"absolute path {written!r} is outside every --asset-root"
            return real, None
        real = Path(os.path.realpath(self.base / p))
        if not self._allowed(real):
            if self._allowed(Path(os.path.normpath(self.base / p))):
                return None, f"path {written!r} is a link that leads out of the storyboard's folder"
            return None, f"path {written!r} leaves the storyboard's folder"
        return real, None

    def _check_file(self, written: str, kind: str) -> str | None:
        real, err = self.resolve(written)
        if err:
            return err
        try:
            if not real.exists():
                return f"{kind} {written!r} does not exist"
            if not real.is_file():
                return f"{kind} {written!r} is not a file"
            size = real.stat().st_size
            limit = MAX_IMAGE_BYTES if kind == "image" else MAX_AUDIO_BYTES
            if size > limit:
                return f"{kind} {written!r} is {size} bytes; the limit is {limit}"
            data = real.read_bytes()
        except OSError as e:
            return f"cannot read {kind} {written!r}: {e.strerror or e}"
        err = _decode_image(data) if kind == "image" else _decode_audio(real)
        if err:
            return f"{kind} {written!r} cannot be decoded: {err}"
        self.assets[written] = Asset(real, hashlib.sha256(data).hexdigest())
        return None


def _decode_image(data: bytes) -> str | None:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) > MAX_IMAGE_SIDE:
                return f"{im.size[0]}x{im.size[1]} is larger than {MAX_IMAGE_SIDE} pixels on a side"
            im.load()
    except UnidentifiedImageError:
        return "not an image in a format Pillow reads (PNG, JPEG, WebP, ...)"
    except Exception as e:  # noqa: BLE001  Pillow raises many types for corrupt files; all mean "not an image"
        return " ".join(str(e).split()) or type(e).__name__
    return None


def _decode_audio(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return "no audio stream"
    except Exception as e:  # noqa: BLE001  PyAV raises per-codec error types; all mean "not audio"
        return " ".join(str(e).split()) or type(e).__name__
    return None
