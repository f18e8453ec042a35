"""Downloads into a cache folder: checksum-verified, written atomically.

A file is streamed into a temporary name beside its destination, hashed on the way,
and renamed into place only when its length and checksum match. A refused
connection, an HTTP error, a cut-off transfer or a wrong checksum leaves nothing
behind, and the next mirror is tried. Archives are unpacked into a temporary folder
and renamed into place the same way, after every member is checked to be a plain
file or folder inside the archive's top folder.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from kiln.data._atomic import atomic_write

__all__ = ["DownloadError", "cache_dir", "check_integrity", "download_url", "extract_tar"]

_CHUNK = 1 << 20


class DownloadError(OSError):
    """A file could not be fetched intact from any of its addresses."""


def cache_dir() -> Path:
    """Where datasets go by default: ``$KILN_DATA``, else ``~/.cache/kiln/datasets``."""
    configured = os.environ.get("KILN_DATA")
    return Path(configured) if configured else Path.home() / ".cache" / "kiln" / "datasets"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    return cache_dir() if root is None else Path(root).expanduser()


def _hashers(md5: str | None, sha256: str | None) -> dict[str, tuple[str, Any]]:
    hashers = {}
    if md5 is not None:  # the datasets publish MD5: an integrity check, not security
        hashers["md5"] = (md5.lower(), hashlib.md5(usedforsecurity=False))
    if sha256 is not None:
        hashers["sha256"] = (sha256.lower(), hashlib.sha256())
    return hashers


def _mismatch(hashers: dict[str, tuple[str, Any]]) -> str | None:
    for name, (expected, hasher) in hashers.items():
        if hasher.hexdigest() != expected:
            return f"{name} {hasher.hexdigest()} does not match the published {expected}"
    return None


def check_integrity(path: str | os.PathLike[str], md5: str | None = None,
                    sha256: str | None = None) -> bool:
    """True if ``path`` exists and matches every checksum given."""
    path = Path(path)
    if not path.is_file():
        return False
    hashers = _hashers(md5, sha256)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            for _, hasher in hashers.values():
                hasher.update(chunk)
    return _mismatch(hashers) is None


def _fetch(url: str, destination: Path, md5: str | None, sha256: str | None,
           timeout: float) -> None:
    hashers = _hashers(md5, sha256)
    with urllib.request.urlopen(url, timeout=timeout) as response, \
            atomic_write(destination) as out:
        declared = response.headers.get("Content-Length")
        received = 0
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            out.write(chunk)
            received += len(chunk)
            for _, hasher in hashers.values():
                hasher.update(chunk)
        if declared is not None and received != int(declared):
            raise DownloadError(f"transfer cut off after {received} of {declared} bytes")
        problem = _mismatch(hashers)
        if problem:
            raise DownloadError(f"checksum failed: {problem}")


def download_url(
    urls: str | Sequence[str],
    folder: str | os.PathLike[str],
    filename: str,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetches ``filename`` into ``folder`` from the first of ``urls`` that works.

    A file already there that matches the checksums is kept as is. Raises
    DownloadError naming every address tried and why each failed; nothing is left
    under ``folder`` in that case.
    """
    if isinstance(urls, str):
        urls = [urls]
    if not urls:
        raise ValueError("download_url: no URL given")
    folder = Path(folder)
    destination = folder / filename
    if check_integrity(destination, md5, sha256) and (md5 or sha256):
        return destination
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        try:
            _fetch(url, destination, md5, sha256, timeout)
            return destination
        except (OSError, http.client.HTTPException, urllib.error.URLError, ValueError) as exc:
            failures.append(f"{url}: {exc}")
    raise DownloadError(f"download: could not fetch {filename}: " + "; ".join(failures))


def _check_member(member: tarfile.TarInfo, top: str, archive: Path) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or name.parts[:1] != (top,):
        raise ValueError(f"extract_tar: {archive} holds {member.name!r}, outside {top}/")
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"extract_tar: {archive} holds {member.name!r}, not a plain file")


def extract_tar(archive: str | os.PathLike[str], folder: str | os.PathLike[str],
                top: str) -> Path:
    """Unpacks ``archive`` (whose members all sit under ``top/``) to ``folder/top``.

    Links, devices and paths leaving ``top/`` are refused. The tree appears under its
    final name only once complete, replacing an older one of that name.
    """
    archive, folder = Path(archive), Path(folder)
    target = folder / top
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".{top}.", suffix=".part"))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, top, archive)
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **extra)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / top, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
