"""Uploading a storyboard folder (a zip archive: the storyboard and its pictures and sound) into the
studio's root, as `uploads/<user>/<name>/`, so it can be opened and rendered like any storyboard there.

Nothing from the archive is trusted: it is streamed to disk and refused past `max_upload_bytes()`
(413); every member's name must be a plain relative path (no absolute path, no `..`, no drive or
backslash), symlinks and special files are refused, the members' declared and actual sizes together
stay under the cap (a zip bomb stops at the cap, not at the disk) and there are at most
`MAX_MEMBERS`. It is unpacked into a hidden folder first and renamed into place only once it is whole
and every storyboard in it was checked by the CLI's validator; one that does not validate is a 422
with its `FILE:LINE:COL` problems (paths shown relative to the root), and nothing stays.
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, HTTPException, Request, UploadFile

from storyboard.errors import InputError, Problem

from .api import Mine

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api")
MAX_MEMBERS = 2000
STORYBOARDS = (".yaml", ".yml", ".pv")   # not .txt: a folder's notes would be read as AniSora prompts
CHUNK = 1 << 20


def max_upload_bytes() -> int:
    """$SAKUGA_STUDIO_MAX_UPLOAD (bytes), else 256 MiB: the archive and its unpacked contents, each."""
    return int(os.environ.get("SAKUGA_STUDIO_MAX_UPLOAD", 256 << 20))


@router.post("/uploads")
async def upload(archive: UploadFile, farm: Mine, request: Request) -> dict:
    """A zip of a storyboard folder → `{"folder": "uploads/USER/NAME", "storyboards": [...]}`."""
    cap = max_upload_bytes()
    root: Path = request.app.state.root
    home = root / "uploads" / farm.user.name
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=home) as spool:
        size = 0
        while chunk := await archive.read(CHUNK):
            size += len(chunk)
            if size > cap:
                raise HTTPException(413, f"an upload is at most {cap >> 20} MiB (SAKUGA_STUDIO_MAX_UPLOAD)")
            spool.write(chunk)
        spool.seek(0)
        folder = unpack(spool, home, _name(archive.filename), cap)
    boards = check(folder, root)
    logger.info("%s uploaded %s (%d bytes, %d storyboards)", farm.user.name, folder, size, len(boards))
    return {"folder": str(folder.relative_to(root)), "storyboards": boards}


def _name(filename: str | None) -> str:
    stem = PurePosixPath((filename or "upload").replace("\\", "/")).name.removesuffix(".zip")
    clean = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip(".-")[:60]
    return clean or "upload"


def unpack(source, home: Path, name: str, cap: int) -> Path:
    """The archive unpacked into `home/<name>` (or `<name>-2`...), whole, or InputError and nothing."""
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile:
        raise InputError.single("archive", "not a zip archive") from None
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise InputError.single("archive", f"{len(members)} files: an upload holds at most {MAX_MEMBERS}")
    if sum(m.file_size for m in members) > cap:
        raise InputError.single("archive", f"unpacks to more than {cap >> 20} MiB")
    staging = Path(tempfile.mkdtemp(dir=home, prefix=".upload-"))
    try:
        written = 0
        for member in members:
            target = staging / _member_path(member)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as dst:
                while chunk := src.read(CHUNK):      # the real size, not the declared one, is capped
                    written += len(chunk)
                    if written > cap:
                        raise InputError.single("archive", f"unpacks to more than {cap >> 20} MiB")
                    dst.write(chunk)
        final = next(home / n for n in [name] + [f"{name}-{i}" for i in range(2, 1000)] if not (home / n).exists())
        os.rename(staging, final)
        return final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _member_path(member: zipfile.ZipInfo) -> PurePosixPath:
    name = member.filename
    path = PurePosixPath(name)
    if (not name or "\\" in name or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]
            or any(p.startswith(".") and p not in (".",) for p in path.parts)):
        raise InputError.single("archive", f"{name!r}: a member must be a plain relative path (no /, .., : or dotfiles)")
    kind = stat.S_IFMT(member.external_attr >> 16)      # 0: the archiver recorded no file type
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise InputError.single("archive", f"{name!r}: links and special files are not accepted")
    return path


def check(folder: Path, root: Path) -> list[dict]:
    """Every storyboard of the upload through the CLI's validator; InputError (422) if one fails, or
    none is there: the folder is removed then."""
    from storyboard.load import load

    boards = sorted(p for p in folder.rglob("*") if p.suffix.lower() in STORYBOARDS and p.is_file())
    problems: list[Problem] = []
    out = []
    for board in boards:
        try:
            loaded = load(board, asset_roots=[folder])
        except InputError as e:
            problems += [Problem(str(Path(p.file).resolve().relative_to(root)) if Path(p.file).is_absolute()
                                 and Path(p.file).resolve().is_relative_to(root) else p.file, p.line, p.col, p.message)
                         for p in e.problems]
            continue
        out.append({"path": str(board.relative_to(root)), "title": loaded.storyboard.title,
                    "shots": sum(1 for _ in loaded.storyboard.shots())})
    if not boards:
        problems.append(Problem("archive", 1, 1, f"no storyboard in it ({', '.join(STORYBOARDS)})"))
    if problems:
        shutil.rmtree(folder, ignore_errors=True)
        raise InputError(problems)
    return out



