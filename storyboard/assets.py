"""Files a storyboard refers to: where a written path leads, and whether the file there decodes.

A relative path must stay inside the storyboard's folder (links included); an absolute one must lie
under an `--asset-root`. Pictures must decode with Pillow, within size limits; soundtracks are probed
with PyAV (streams, duration, the first packets decoded), never read whole. Each written path is
resolved once, and each real file examined once however many spellings lead to it
(`d1/../big.png`, `./big.png`); what passes becomes an `Asset`.

Messages name a file only as the storyboard writes it, and never quote what a file holds: a decoder's
own wording is kept only where it is one of its fixed phrases.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .text import REFUSED_IN_PATHS, describe

MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_IMAGE_SIDE = 8192
MAX_AUDIO_BYTES = 512 * 1024 * 1024
AUDIO_PROBE_PACKETS = 64      # packets demuxed to find sound at the start of a soundtrack

FILE = "{file}"               # where a message about a file names it: "image 'a.png'" (as written)
# Pillow's fixed phrases worth passing on; anything else it says may quote the file's bytes
_PILLOW_PHRASES = ("image file is truncated", "broken PNG file", "broken data stream", "not enough data",
                   "unrecognized data stream contents", "buffer is not large enough", "decoder error")


@dataclass(frozen=True)
class Asset:
    path: Path                        # resolved, inside the storyboard folder or an asset root
    sha256: str | None                # of a picture's bytes; None for a soundtrack (probed, not read)
    duration_s: float | None = None   # a soundtrack's length, as its container gives it
    size: tuple[int, int] | None = None   # a picture's width and height


class AssetFiles:
    """The files of one storyboard: `check` each written path, then `assets` holds those that passed."""

    def __init__(self, base: Path, asset_roots: list[Path]):
        self.base = base
        self.roots = [Path(os.path.realpath(r)) for r in asset_roots]
        self.assets: dict[str, Asset] = {}
        self._checked: dict[str, str | None] = {}               # written path → error message or None
        self._examined: dict[tuple[Path, str], Asset | str] = {}  # (real path, kind) → asset or message

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
        if m := REFUSED_IN_PATHS.search(written):
            return None, f"path {written!r} contains {describe(m.group())}"
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
        key = (real, kind)
        if key not in self._examined:
            self._examined[key] = _examine(real, kind)
        found = self._examined[key]
        if isinstance(found, str):
            return found.replace(FILE, f"{kind} {written!r}")
        self.assets[written] = found
        return None


def _examine(real: Path, kind: str) -> Asset | str:
    """The asset at `real`, or what is wrong with it (naming the file as `FILE`)."""
    try:
        if not real.exists():
            return f"{FILE} does not exist"
        if not real.is_file():
            return f"{FILE} is not a file"
        limit = MAX_IMAGE_BYTES if kind == "image" else MAX_AUDIO_BYTES
        size = real.stat().st_size
        if size > limit:
            return f"{FILE} is {size} bytes; the limit is {limit}"
        if kind == "audio":
            return _probe_audio(real)
        with open(real, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return f"{FILE} is not a file"
            data = f.read(limit + 1)   # the size above may have changed since
    except OSError as e:
        return f"cannot read {FILE}: {e.strerror or type(e).__name__}"
    if len(data) > limit:
        return f"{FILE} is more than {limit} bytes; the limit is {limit}"
    decoded = _decode_image(data)
    if isinstance(decoded, str):
        return f"{FILE} cannot be decoded: {decoded}"
    return Asset(real, hashlib.sha256(data).hexdigest(), size=decoded)


def _decode_image(data: bytes) -> tuple[int, int] | str:
    """The picture's width and height, or what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) > MAX_IMAGE_SIDE:
                return f"{im.size[0]}x{im.size[1]} is larger than {MAX_IMAGE_SIDE} pixels on a side"
            im.load()
            size = im.size
    except UnidentifiedImageError:
        return "not an image in a format Pillow reads (PNG, JPEG, WebP, ...)"
    except Image.DecompressionBombError:
        return "too many pixels for a picture"
    except Exception as e:  # noqa: BLE001  Pillow raises many types for corrupt files; all mean "not an image"
        said = " ".join(str(e).split())
        phrase = next((p for p in _PILLOW_PHRASES if said.lower().startswith(p.lower())), None)
        return phrase or "the picture is damaged, or in a form Pillow cannot decode"
    return size


def _probe_audio(path: Path) -> Asset | str:
    """A soundtrack's streams and duration, and sound decoded from its first packets (never read whole)."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                return f"{FILE} cannot be decoded: no audio stream"
            stream = container.streams.audio[0]
            duration = _duration(container, stream)
            for packet in itertools.islice(container.demux(stream), AUDIO_PROBE_PACKETS):
                if packet.decode():
                    break
            else:
                return f"{FILE} cannot be decoded: no sound in its first {AUDIO_PROBE_PACKETS} packets"
    except Exception as e:  # noqa: BLE001  PyAV raises per-codec error types; all mean "not audio"
        # FFmpeg's own words for the error (a fixed phrase), never the file's name as PyAV resolved it
        return f"{FILE} cannot be decoded: {getattr(e, 'strerror', None) or 'not a sound file PyAV opens'}"
    if duration is not None and not duration > 0:
        return f"{FILE} cannot be decoded: its audio lasts {duration} s"
    return Asset(path, None, duration)


def _duration(container, stream) -> float | None:
    """Seconds the container (else the stream) says the soundtrack lasts; None when neither says."""
    if container.duration is not None:
        seconds = container.duration / 1_000_000   # AV_TIME_BASE
    elif stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    else:
        return None
    return seconds if math.isfinite(seconds) else None
