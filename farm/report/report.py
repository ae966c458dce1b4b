"""The QC report: `DIR/report.html` (one self-contained file) and `DIR/contact_sheet.png`.

Everything comes from what a render leaves in DIR (plan.json, manifest.parquet, ledger.sqlite and
shots/*.mp4, and each delivery's deliver/<profile>/delivery.json), so `sakuga report DIR` rebuilds both
at any time without rendering. Delivery stages (upscale, retime) get bars of their own in the
schedule; each delivery profile gets a table: its frames and rate, each shot's flicker before and
after its stages, the loudness before and after normalisation. Each shot's video is
decoded once, at thumbnail size, for its stills, its animated preview and its flicker; memory stays a
few dozen thumbnails whatever the episode's length.

A shot is flagged for a second look when it failed, when a character's similarity to its bank falls
below `min_similarity`, when its flicker (mean absolute change between consecutive frames, 0..1)
exceeds `max_flicker`, or when a single frame-to-frame jump exceeds `max_jump` (a seam between
segments that did not join, a pop).
"""
from __future__ import annotations

import base64
import io
import json
import re
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageDraw, ImageFont

from engine.qc import change, sample_indices
from farm.job.events import JobEvent
from farm.job.folder import JobFolder
from farm.job.publish import atomic_path
from farm.job.recorded import last_job
from farm.media.decode import read_frames
from farm.report import charts
from storyboard.errors import InputError

if TYPE_CHECKING:
    from farm.job.job import Job

THUMB_WIDTH = 240
PREVIEW_FRAMES = 24
SIMILARITY = "character_similarity."


@dataclass(frozen=True)
class Thresholds:
    min_similarity: float = 0.80
    max_flicker: float = 0.08
    max_jump: float = 0.25


@dataclass
class ShotCard:
    id: str
    scene: str
    prompt: str
    camera: str | None
    characters: list[str]
    frames: int                          # planned
    segments: list[dict]                 # manifest rows
    attempts: list[dict]                 # ledger rows, every segment's
    status: str = "done"                 # done, failed, skipped, missing
    error: str | None = None
    stills: list[tuple[int, Image.Image]] = field(default_factory=list)   # (frame, thumbnail)
    preview: bytes | None = None         # animated WebP
    flicker: float | None = None
    jump: tuple[float, int] | None = None   # largest frame-to-frame change and the frame it lands on
    similarity: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    @property
    def seams(self) -> list[int]:
        """Frames of the shot where a later segment takes over."""
        return [r["first_frame"] for r in self.segments[1:]]

    def summary(self) -> dict:
        rows = self.segments
        return {"seeds": ", ".join(str(r["seed"]) for r in rows),
                "models": ", ".join(sorted({r["model"] for r in rows})),
                "workers": ", ".join(sorted({r["worker"] for r in rows if r["worker"]})) or "-",
                "degree": max((r["degree"] or 1 for r in rows), default=1),
                "attempts": sum(r["attempts"] or 0 for r in rows),
                "origins": ", ".join(sorted({r["origin"] for r in rows if r["origin"]})) or "-",
                "render_s": sum(r["render_s"] or 0 for r in rows)}


def write_report(out: Path, thresholds: Thresholds = Thresholds()) -> Path:
    """Build `out/report.html` and `out/contact_sheet.png` from the render recorded in `out`."""
    folder = JobFolder(out)
    run = _load(folder)
    cards = [_card(folder, shot, run) for shot in run["plan"]["shots"]]
    for card in cards:
        _judge(card, thresholds)
    page = _render_page(folder, run, cards, thresholds)
    with atomic_path(folder.report) as tmp:
        tmp.write_text(page, encoding="utf-8")
    sheet = contact_sheet(cards, run["plan"]["title"])
    with atomic_path(folder.contact_sheet) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return folder.report


# -- reading a render -------------------------------------------------------------------------------

def _load(folder: JobFolder) -> dict:
    if not folder.root.is_dir():
        raise InputError.single(folder.root, "not a folder")
    files = {p.name: p for p in (folder.plan, folder.manifest, folder.ledger)}
    for name, path in files.items():
        if not path.is_file():
            raise InputError.single(path, f"missing: {folder.root} does not look like the output folder of a "
                                          f"finished sakuga render (no {name})")
    try:
        plan = json.loads(files["plan.json"].read_text(encoding="utf-8"))
        plan["shots"], plan["title"]   # noqa: B018 (the fields the report cannot do without)
    except (ValueError, KeyError, TypeError) as e:
        raise InputError.single(files["plan.json"], f"not a sakuga plan ({e})") from None
    try:
        rows = pq.read_table(files["manifest.parquet"]).to_pylist()
    except Exception as e:   # noqa: BLE001 (pyarrow raises several kinds for a damaged file)
        raise InputError.single(files["manifest.parquet"], f"unreadable manifest ({e})") from None
    recorded = last_job(folder)
    if recorded is None:
        raise InputError.single(folder.ledger, "the ledger records no render")
    job, attempts = recorded.job, recorded.attempts
    for r in rows:
        r["metrics"] = dict(r.get("metrics") or [])
        r.setdefault("origin", None)   # manifests before the column; the ledger's record holds it too
        r.setdefault("kind", "segment")
    deliveries = []
    for path in sorted(folder.root.glob("deliver/*/delivery.json")):
        try:
            deliveries.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass   # a delivery being rewritten, or damaged: the rest of the report stands
    return {"plan": plan, "manifest": [r for r in rows if r["kind"] == "segment"],
            "stages": [r for r in rows if r["kind"] != "segment"], "job": job, "attempts": attempts,
            "deliveries": deliveries}


def _card(folder: JobFolder, shot: dict, run: dict) -> ShotCard:
    rows = [r for r in run["manifest"] if r["shot"] == shot["id"]]
    ids = {r["segment"] for r in rows}
    card = ShotCard(shot["id"], shot.get("scene", ""), shot.get("prompt", rows[0]["prompt"] if rows else ""),
                    shot.get("camera"), list(shot.get("characters", [])), shot["frames"], rows,
                    [a for a in run["attempts"] if a["segment"] in ids])
    bad = [r for r in rows if r["status"] != "done"]
    if bad:
        card.status = "failed" if any(r["status"] == "failed" for r in bad) else bad[0]["status"]
        card.error = "; ".join(f"{r['segment']}: {r['error'] or r['status']}" for r in bad)
        return card
    for cid in card.characters:
        values = [(r["metrics"][SIMILARITY + cid], r["frames"]) for r in rows if SIMILARITY + cid in r["metrics"]]
        if values:
            card.similarity[cid] = sum(v * n for v, n in values) / sum(n for _, n in values)
    try:
        _look(card, folder.shot(shot['id']), run["plan"]["output"]["fps"])
    except Exception as e:   # noqa: BLE001 (PyAV raises many kinds for a missing or damaged file)
        card.status, card.error = "missing", f"shots/{shot['id']}.mp4 could not be read ({e})"
    return card


def _look(card: ShotCard, path: Path, fps: int) -> None:
    """One pass over the shot at thumbnail size: stills, preview frames, flicker and the largest jump."""
    n = card.frames
    stills, previews = set(sample_indices(n, 3)), set(sample_indices(n, PREVIEW_FRAMES))
    preview: list[Image.Image] = []
    total, count, jump, prev = 0.0, 0, (0.0, 0), None
    for i, frame in enumerate(read_frames(path, width=THUMB_WIDTH)):
        if prev is not None:
            d = change(prev, frame)
            total, count = total + d, count + 1
            jump = max(jump, (d, i))
        prev = frame
        if i in stills:
            card.stills.append((i, Image.fromarray(frame)))
        if i in previews:
            preview.append(Image.fromarray(frame))
    if prev is None:
        raise ValueError("no frames")
    card.flicker = total / count if count else 0.0
    card.jump = jump if count else None
    if len(preview) > 1:
        buf = io.BytesIO()
        step_ms = max(20, round(1000 * n / fps / len(preview)))
        preview[0].save(buf, format="WEBP", save_all=True, append_images=preview[1:], duration=step_ms,
                        loop=0, quality=60, method=4)
        card.preview = buf.getvalue()


def _judge(card: ShotCard, t: Thresholds) -> None:
    if card.status != "done":
        card.flags.append(f"{card.status}: {card.error}")
        return
    for cid, value in card.similarity.items():
        if value < t.min_similarity:
            card.flags.append(f"{cid} similarity {value:.2f} < {t.min_similarity:.2f}")
    if card.flicker is not None and card.flicker > t.max_flicker:
        card.flags.append(f"flicker {card.flicker:.3f} > {t.max_flicker:.3f}")
    if card.jump is not None and card.jump[0] > t.max_jump:
        where = " (a segment seam)" if card.jump[1] in card.seams else ""
        card.flags.append(f"jump {card.jump[0]:.3f} > {t.max_jump:.3f} at frame {card.jump[1]}{where}")


# -- the page -----------------------------------------------------------------------------------------

def _data_uri(image: Image.Image | bytes, kind: str = "jpeg") -> str:
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=85)
        image = buf.getvalue()
    return f"data:image/{kind};base64," + base64.b64encode(image).decode("ascii")


def totals(run: dict) -> dict:
    attempts = [a for a in run["attempts"] if a["started"] and a["ended"]]
    on_gpus = [a for a in attempts if not (a["worker"] or "").startswith("cpu")]   # not the CPU lanes' stages
    cost = [((a["ended"] - a["started"]) * (a["degree"] or 1), a["status"]) for a in on_gpus]   # GPU-seconds
    gpu_s = sum(s for s, _ in cost)
    wasted = sum(s for s, status in cost if status != "done")
    span = (max(a["ended"] for a in attempts) - min(a["started"] for a in attempts)) if attempts else 0.0
    origins: dict[str, int] = {}
    for r in run["manifest"]:
        if r["status"] == "done":
            origins[r["origin"] or "rendered"] = origins.get(r["origin"] or "rendered", 0) + 1
    segments = len(run["manifest"])
    gpus = (run["job"].get("config") or {}).get("gpus") or 1
    return {"gpu_s": gpu_s, "wasted_gpu_s": wasted, "span_s": span, "gpus": gpus,
            "utilisation": gpu_s / (span * gpus) if span else None,
            "segments": segments, "rendered": origins.get("rendered", 0), "cache": origins.get("cache", 0),
            "kept": origins.get("resumed", 0), "failed": sum(r["status"] != "done" for r in run["manifest"]),
            "attempts": len(run["attempts"]), "retries": sum(a["n"] > 1 for a in run["attempts"])}


def _render_page(folder: JobFolder, run: dict, cards: list[ShotCard], t: Thresholds) -> str:
    plan = run["plan"]
    env = Environment(loader=PackageLoader("farm.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["clock"] = lambda s: time.strftime("%H:%M:%S", time.gmtime(s)) if s is not None else "-"
    shots = [{"card": c, "info": c.summary(), "anchor": "shot-" + re.sub(r"[^a-z0-9_-]", "-", c.id),
              "stills": [(i, _data_uri(im)) for i, im in c.stills],
              "preview": _data_uri(c.preview, "webp") if c.preview else None} for c in cards]
    try:
        sakuga_version = version("sakuga")
    except PackageNotFoundError:
        sakuga_version = "dev"
    return env.get_template("report.html.j2").render(
        title=plan["title"], plan=plan, job=run["job"], shots=shots, thresholds=t,
        totals=totals(run), flagged=[s for s in shots if s["card"].flags],
        similarity=charts.similarity(cards, t.min_similarity), flicker=charts.flicker(cards, t.max_flicker),
        gantt=charts.gantt(run["attempts"], [c.id for c in cards],
                           {r["segment"]: r["shot"] for r in run["manifest"] + run["stages"]},
                           {r["segment"]: r["kind"] for r in run["stages"]}),
        deliveries=run["deliveries"], stages=run["stages"],
        episode=folder.episode.is_file(), timeline=folder.timeline.is_file(),
        generated=time.strftime("%Y-%m-%d %H:%M:%S"), version=sakuga_version)


# -- the contact sheet --------------------------------------------------------------------------------

def contact_sheet(cards: list[ShotCard], title: str) -> Image.Image:
    """Every shot on one picture: a row each, its id and flags, then its first, middle and last frame."""
    tile_w = max((im.width for c in cards for _, im in c.stills), default=THUMB_WIDTH)
    tile_h = max((im.height for c in cards for _, im in c.stills), default=THUMB_WIDTH * 9 // 16)
    label_w, pad = 220, 8
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=11)
    head = 36
    sheet = Image.new("RGB", (label_w + 3 * (tile_w + pad) + pad, head + len(cards) * (tile_h + pad) + pad), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 10), f"{title}: {len(cards)} shots", fill=(240, 240, 240), font=font)
    for row, card in enumerate(cards):
        y = head + row * (tile_h + pad)
        colour = (240, 200, 80) if card.flags else (200, 200, 200)
        draw.text((pad, y + 4), card.id, fill=colour, font=font)
        draw.text((pad, y + 24), f"{card.frames} frames, {card.status}", fill=(160, 160, 160), font=small)
        for k, flag in enumerate(card.flags[:4]):
            draw.text((pad, y + 42 + 15 * k), flag[:34], fill=(240, 120, 100), font=small)
        for col in range(3):
            x = label_w + pad + col * (tile_w + pad)
            if col < len(card.stills):
                frame, im = card.stills[col]
                sheet.paste(im, (x, y))
                label = f"frame {frame}"
                box = draw.textbbox((x + 4, y + tile_h - 16), label, font=small)
                draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
                draw.text((x + 4, y + tile_h - 16), label, fill=(255, 255, 255), font=small)
            else:
                draw.rectangle((x, y, x + tile_w - 1, y + tile_h - 1), fill=(60, 40, 40))
    return sheet


def write_report_on_finish(job: Job, event: JobEvent) -> None:
    """A job observer: the report of a delivered job, last (it reads the manifest and the final status).
    A report that fails does not lose the cut: it is a note, and `sakuga report` can try again."""
    if event.kind != "finished" or event.status == "cancelled" or job.error:   # delivered only
        return
    try:
        write_report(job.out)
    except Exception as e:   # noqa: BLE001
        job.note(f"{job.folder.report} not written: {type(e).__name__}: {e}", kind="report")
