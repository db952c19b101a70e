"""Official weight files: where they come from, resumable download, verification.

Honesty rules: no checksum is written down here that we have not verified ourselves. For files on the Hugging Face
hub the sha256 comes from the server (the LFS object id, sent as X-Linked-Etag / listed by the hub's tree API) and the
file is checked against it; for other hosts the file is checked against the size the server reports
(Content-Length), which catches truncated downloads but not tampering.

Downloads use urllib (no QGIS needed, so they are testable and usable from scripts); they resume from `<file>.part`
with an HTTP Range request and only rename to the final name once verified.
"""
from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
TIMEOUT_S = 20


@dataclass
class WeightFile:
    key: str                      # settings key (settings.WEIGHT_KEYS)
    label: str
    url: str
    filename: str
    size: int | None = None    # bytes, when known in advance
    sha256: str | None = None  # only when verified / reported by the server, never guessed
    note: str = ""

    def verification_text(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        if "huggingface.co" in self.url:
            return "verified after download against the sha256 the Hugging Face hub reports for the file"
        return "verified after download against the size the server reports (no published checksum)"


HF = "https://huggingface.co"

CATALOG: dict[str, list[WeightFile]] = {
    "sam2": [WeightFile(
        "sam2", "SAM 2 Hiera-Large (SAM 2.0; the RS2-SAM2 authors' initial weights)",
        "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt", "sam2_hiera_large.pt",
        note="Meta's official release (facebookresearch/sam2).")],
    "beit3": [WeightFile(
        "beit3", "BEiT-3 large, patch 16, 224 px",
        "https://github.com/addf400/files/releases/download/beit3/beit3_large_patch16_224.pth",
        "beit3_large_patch16_224.pth", note="Linked from microsoft/unilm beit3/README.md.")],
    "beit3_spm": [WeightFile(
        "beit3_spm", "BEiT-3 sentencepiece model (XLM-R vocabulary)",
        "https://github.com/addf400/files/releases/download/beit3/beit3.spm", "beit3.spm",
        note="Linked from microsoft/unilm beit3/README.md.")],
    "clip": [WeightFile(
        "clip", "SigLIP ViT-SO400M-14-384 (open_clip, as RSRefSeg)",
        f"{HF}/timm/ViT-SO400M-14-SigLIP-384/resolve/main/open_clip_model.safetensors",
        "ViT-SO400M-14-SigLIP-384.safetensors", note="open_clip's hub copy (timm/ViT-SO400M-14-SigLIP-384).")],
    # The authors' release is a save_pretrained folder (possibly sharded): its file list comes from the hub.
    "rs2sam2": [WeightFile(
        "rs2sam2", "RS2-SAM2 trained on RRSIS-D (authors' release, folder 'rrsisd')",
        f"{HF}/api/models/ReeF2025/RS2-SAM2/tree/main/rrsisd", "RS2-SAM2-rrsisd",
        note="A folder: every file listed by the hub is downloaded and checked against its sha256.")],
}


class DownloadError(RuntimeError):
    """A download failed; the message says what to do (e.g. download elsewhere and choose the file)."""


def _offline_message(url: str, exc: Exception) -> str:
    host = urllib.request.urlparse(url).netloc
    return (f"cannot reach {host} ({getattr(exc, 'reason', exc)}): this computer seems offline or the host is "
            f"blocked. Download {url} on a computer with internet access and choose the file with '…'.")


def _open(url: str, start: int = 0, method: str = "GET"):
    headers = {"User-Agent": "rs2sam2-qgis"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - https URLs of our catalog
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # range not satisfiable: the .part file is already complete (or larger)
            return exc
        raise DownloadError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(_offline_message(url, exc)) from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, sha256: str | None = None, size: int | None = None,
             progress: Callable[[int, int | None], None] | None = None,
             is_cancelled: Callable[[], bool] | None = None) -> Path:
    """Downloads `url` to `dest`, resuming `dest.part`; verifies sha256 (given or HF-reported) or the size."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    response = _open(url, start)
    status = getattr(response, "status", None) or response.getcode()
    headers = response.headers
    if status == 416:
        total = start
    else:
        if status == 200 and start:  # the server ignored the Range header: start over
            start = 0
        length = headers.get("Content-Length")
        total = (start + int(length)) if length is not None else None
    server_sha = (headers.get("X-Linked-Etag") or headers.get("ETag") or "").strip('"').lower()
    if not sha256 and len(server_sha) == 64 and all(c in "0123456789abcdef" for c in server_sha) \
            and "huggingface.co" in url:
        sha256 = server_sha
    expected_size = size or total
    if status != 416:
        with response, open(part, "ab" if start else "wb") as fh:
            done = start
            while True:
                if is_cancelled is not None and is_cancelled():
                    raise DownloadError(f"download cancelled; {done} bytes kept in {part} (the next download "
                                        "resumes from there)")
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                fh.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, expected_size)
    got = part.stat().st_size
    if expected_size is not None and got != expected_size:
        raise DownloadError(f"{dest.name}: got {got} bytes, expected {expected_size}; run the download again to "
                            "resume")
    if sha256:
        actual = sha256_of(part)
        if actual != sha256.lower():
            part.unlink()
            raise DownloadError(f"{dest.name}: sha256 {actual} does not match {sha256}; the partial file was "
                                "deleted, download again")
    os.replace(part, dest)
    return dest


def hub_folder_files(tree_url: str) -> list[WeightFile]:
    """Files of a Hugging Face hub folder (tree API URL) with their sizes and the LFS sha256 the hub reports."""
    response = _open(tree_url)
    with response:
        entries = json.loads(response.read().decode("utf-8"))
    # .../api/models/<org>/<name>/tree/<rev>/<folder>  ->  .../<org>/<name>/resolve/<rev>/<path>
    prefix, _, rest = tree_url.partition("/api/models/")
    repo_parts = rest.split("/tree/")
    repo, revision = repo_parts[0], repo_parts[1].split("/")[0]
    files = []
    for entry in entries:
        if entry.get("type") != "file":
            continue
        lfs = entry.get("lfs") or {}
        files.append(WeightFile(
            "rs2sam2", entry["path"], f"{prefix}/{repo}/resolve/{revision}/{entry['path']}",
            entry["path"].split("/")[-1], size=lfs.get("size") or entry.get("size"), sha256=lfs.get("oid")))
    if not files:
        raise DownloadError(f"{tree_url} lists no files")
    return files


def download_entry(entry: WeightFile, folder: Path, progress=None, is_cancelled=None) -> Path:
    """Downloads one catalog entry into `folder`; returns the path to put in the settings (file or folder)."""
    folder = Path(folder)
    if "/api/models/" in entry.url:
        target = folder / entry.filename
        files = hub_folder_files(entry.url)
        total = sum(f.size or 0 for f in files) or None
        done_before = 0
        for f in files:
            def file_progress(done, _size, base=done_before):
                if progress is not None:
                    progress(base + done, total)
            if not (target / f.filename).exists():
                download(f.url, target / f.filename, sha256=f.sha256, size=f.size, progress=file_progress,
                         is_cancelled=is_cancelled)
            done_before += f.size or 0
        return target
    return download(entry.url, folder / entry.filename, sha256=entry.sha256, size=entry.size, progress=progress,
                    is_cancelled=is_cancelled)


def default_folder() -> Path:
    from .bootstrap import user_libs_dir

    return user_libs_dir().parent / "weights"
