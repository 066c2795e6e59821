"""Fetch the open-access raw sources into the folder `python -m data_prep SOURCE --raw DIR` reads.

PTB-XL 1.0.3, MIMIC-IV-ECG 1.0 and the PhysioNet/CinC Challenge 2021 training sources 1.0.3 come file by
file from PhysioNet, each verified against the project's SHA256SUMS.txt; CODE-15% comes from Zenodo record
4916206 (exams.csv and exams_partK.zip, MD5 from the record API), each zip extracted then deleted.

Every file is streamed to `<name>.part`, resumed with an HTTP Range request after an interruption,
verified and renamed into place: re-running the same command resumes, and a complete file with the right
checksum is never fetched again. Only `urllib` is used; `opener` is injectable for tests.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PureWindowsPath
from typing import Any, Protocol

from tqdm import tqdm

from data_prep.sources import SOURCES
from ecgjepa.core.errors import DataPrepError

# Keyed by `SourceSpec.reader`; the Challenge sources are the folders `training/<folder>/` of one project.
PHYSIONET_PROJECTS = {
    "ptbxl": "https://physionet.org/files/ptb-xl/1.0.3/",
    "mimic_iv_ecg": "https://physionet.org/files/mimic-iv-ecg/1.0/",
    "challenge2021": "https://physionet.org/files/challenge-2021/1.0.3/",
}
CODE15_RECORD_URL = "https://zenodo.org/api/records/4916206"
CODE15_FILE = re.compile(r"exams\.csv|exams_part\d+\.zip")
SUMS_NAME = "SHA256SUMS.txt"
THREADS = 4
BATCH = 10_000  # files submitted to the thread pool at a time (MIMIC-IV-ECG lists ~1.6M)
BLOCK = 1 << 20
TIMEOUT_S = 60
USER_AGENT = "ecgjepa-data-prep"
NO_NETWORK_HINT = (
    "without network access, fetch the files elsewhere and run without --download, pointing --raw at the local copy"
)
_SUMS_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")

Log = Callable[[str], None]


class DownloadError(DataPrepError):
    """A file could not be fetched, failed its checksum, or an archive was refused."""


class Opener(Protocol):
    """What `download_file` needs of `urllib.request.OpenerDirector`."""

    def open(self, fullurl: urllib.request.Request, data: bytes | None = None, timeout: float = ...) -> Any: ...


def default_opener() -> Opener:
    return urllib.request.build_opener()


def download_file(
    url: str,
    dest: Path,
    expected_sha256: str | None = None,
    expected_md5: str | None = None,
    opener: Opener | None = None,
) -> bool:
    """Fetch `url` into `dest`, resuming `dest.part`; returns False when a complete `dest` was kept.

    A `dest` that already exists is kept if it matches the given checksums (or none is given) and fetched
    again otherwise. A download that fails its checksum is deleted and raises `DownloadError`.
    """
    dest = Path(dest)
    expected = {
        name: digest.lower()
        for name, digest in (("sha256", expected_sha256), ("md5", expected_md5))
        if digest is not None
    }
    if dest.is_file():
        if _digests(dest, expected) == expected:
            return False
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _transfer(url, part, opener or default_opener())
    actual = _digests(part, expected)
    for name, digest in expected.items():
        if actual[name] != digest:
            part.unlink()
            raise DownloadError(
                f"{name} mismatch for {dest.name} from {url}: expected {digest}, got {actual[name]}; "
                "the download was deleted, re-run to fetch it again"
            )
    os.replace(part, dest)
    return True


def _digests(path: Path, expected: dict[str, str]) -> dict[str, str]:
    hashes = {name: hashlib.new(name) for name in expected}
    if hashes:
        with open(path, "rb") as f:
            while block := f.read(BLOCK):
                for digest in hashes.values():
                    digest.update(block)
    return {name: digest.hexdigest() for name, digest in hashes.items()}


def _transfer(url: str, part: Path, opener: Opener) -> None:
    """Append the rest of `url` to `part` (Range request), or rewrite it when the server sends it all."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S) as response:
            resumed = offset > 0 and response.status == 206
            if resumed and not (response.headers.get("Content-Range") or "").startswith(f"bytes {offset}-"):
                raise DownloadError(
                    f"{url} answered Range bytes={offset}- with {response.headers.get('Content-Range')}"
                )
            length = response.headers.get("Content-Length")
            written = 0
            with open(part, "ab" if resumed else "wb") as f:
                while block := response.read(BLOCK):
                    f.write(block)
                    written += len(block)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            return  # the part already holds the whole file; the checksum decides
        raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise DownloadError(f"cannot download {url}: {error.reason}; {NO_NETWORK_HINT}") from error
    except (OSError, http.client.HTTPException) as error:
        raise DownloadError(f"download of {url} interrupted ({error!r}); re-run to resume {part}") from error
    if length is not None and written != int(length):
        raise DownloadError(f"download of {url} incomplete: {written} of {length} bytes; re-run to resume {part}")


def parse_sha256sums(text: str) -> dict[str, str]:
    """`{relative path: sha256}` from a `sha256sum` listing such as PhysioNet's SHA256SUMS.txt.

    Lines read `<64 hex digits>  <path>` (`*<path>` in binary mode); blank lines are skipped. A malformed
    line, or a path that is absolute or contains '..', raises `DownloadError`.
    """
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _SUMS_LINE.fullmatch(line)
        if match is None:
            raise DownloadError(f"{SUMS_NAME} line {number} is not '<sha256>  <path>': {line[:200]!r}")
        digest, path = match.groups()
        reason = _unsafe_reason(path)
        if reason is not None:
            raise DownloadError(f"{SUMS_NAME} line {number}: path {path!r} {reason}")
        sums[path] = digest.lower()
    return sums


def _unsafe_reason(name: str) -> str | None:
    """Why the relative path `name` could leave the folder it is resolved in, or None."""
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "is an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "contains '..'"
    return None


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip or tar archive into `target`, refusing the whole archive if any member could escape.

    Every member is checked before anything is written: absolute names, '..' components, links whose
    target is absolute or contains '..' (tar hardlink targets are archive paths, symlink targets relative
    to the link) and special files (devices, FIFOs) raise `DownloadError` naming the member.
    """
    archive, target = Path(archive), Path(target)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _refuse(archive, info.filename, _unsafe_reason(info.filename))
            target.mkdir(parents=True, exist_ok=True)
            zf.extractall(target)  # zipfile never creates links
        return
    if not tarfile.is_tarfile(archive):
        raise DownloadError(f"{archive} is neither a zip nor a tar archive")
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            reason = _unsafe_reason(member.name)
            if reason is None and (member.issym() or member.islnk()):
                link_reason = _unsafe_reason(member.linkname)
                reason = None if link_reason is None else f"links to {member.linkname!r}, which {link_reason}"
            elif reason is None and not (member.isfile() or member.isdir()):
                reason = "is a special file"
            _refuse(archive, member.name, reason)
        target.mkdir(parents=True, exist_ok=True)
        # Defence in depth, and no DeprecationWarning on Python 3.12+; older Pythons ignore the attribute.
        tf.extraction_filter = getattr(tarfile, "data_filter", None)
        tf.extractall(target, members=members)


def _refuse(archive: Path, member: str, reason: str | None) -> None:
    if reason is not None:
        raise DownloadError(f"refusing to extract {archive}: member {member!r} {reason}; nothing was extracted")


def fetch(
    source: str,
    raw_dir: Path,
    *,
    rate: int | None = None,
    opener: Opener | None = None,
    progress: bool = True,
    log: Log = print,
) -> int:
    """Download the raw files of `source` (a key of `SOURCES`) into `raw_dir`; returns how many were fetched.

    `raw_dir` gets the layout `python -m data_prep SOURCE --raw raw_dir` expects. PTB-XL with `rate` 500 or
    100 skips the other rate's records. Files already complete are kept; failed files are retried by
    re-running, which resumes them.
    """
    spec = SOURCES[source]
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    opener = opener or default_opener()
    if spec.reader == "code15":
        return _fetch_code15(raw_dir, opener, log)

    base = PHYSIONET_PROJECTS[spec.reader]
    prefix = f"training/{spec.folders[0]}/" if spec.reader == "challenge2021" else ""
    skipped = {500: "records100/", 100: "records500/"}.get(rate) if spec.reader == "ptbxl" else None
    download_file(base + SUMS_NAME, raw_dir / SUMS_NAME, opener=opener)
    listed = parse_sha256sums((raw_dir / SUMS_NAME).read_text())
    jobs = [
        (base + urllib.parse.quote(path), raw_dir / path.removeprefix(prefix), digest)
        for path, digest in listed.items()
        if path.startswith(prefix) and not (skipped and path.startswith(skipped))
    ]
    if not jobs:
        raise DownloadError(f"{base}{SUMS_NAME} lists no file under {prefix!r}")
    log(f"{source}: {len(jobs)} files from {base}{prefix} -> {raw_dir}")
    downloaded, failures = 0, []
    with (
        ThreadPoolExecutor(THREADS) as pool,
        tqdm(total=len(jobs), desc=source, unit="file", disable=not progress) as bar,
    ):
        for start in range(0, len(jobs), BATCH):
            futures = [
                pool.submit(download_file, url, dest, digest, opener=opener)
                for url, dest, digest in jobs[start : start + BATCH]
            ]
            for future in as_completed(futures):
                try:
                    downloaded += future.result()
                except DownloadError as error:
                    failures.append(str(error))
                bar.update()
    if failures:
        raise DownloadError(
            f"{source}: {len(failures)} of {len(jobs)} files failed (first: {failures[0]}); "
            "re-run the same command to resume"
        )
    log(f"{source}: {downloaded} files downloaded, {len(jobs) - downloaded} already complete")
    return downloaded


def _fetch_code15(raw_dir: Path, opener: Opener, log: Log) -> int:
    """exams.csv and exams_partK.zip (MD5 from Zenodo), each zip extracted to exams_partK.hdf5 then deleted."""
    record_path = raw_dir / "zenodo_record.json"
    download_file(CODE15_RECORD_URL, record_path, opener=opener)
    try:
        files = [
            (entry["key"], entry["links"]["self"], entry["checksum"].removeprefix("md5:"))
            for entry in json.loads(record_path.read_text())["files"]
            if CODE15_FILE.fullmatch(entry["key"])
        ]
    except (ValueError, KeyError, TypeError) as error:
        record_path.unlink()
        raise DownloadError(f"unexpected answer from {CODE15_RECORD_URL} ({error!r}); re-run to ask again") from error
    if not files:
        raise DownloadError(f"{CODE15_RECORD_URL} lists neither exams.csv nor exams_partK.zip")
    log(f"code15: {len(files)} files from {CODE15_RECORD_URL} -> {raw_dir}")
    downloaded = 0
    for key, url, md5 in sorted(files):
        if key == "exams.csv":
            downloaded += download_file(url, raw_dir / key, expected_md5=md5, opener=opener)
            continue
        hdf5 = raw_dir / key.replace(".zip", ".hdf5")
        if hdf5.is_file():
            continue
        archive = raw_dir / key
        downloaded += download_file(url, archive, expected_md5=md5, opener=opener)
        staging = raw_dir / f".{key}.extract"  # moved into place only once complete
        shutil.rmtree(staging, ignore_errors=True)
        safe_extract(archive, staging)
        for entry in staging.iterdir():
            os.replace(entry, raw_dir / entry.name)
        staging.rmdir()
        if not hdf5.is_file():
            raise DownloadError(f"{archive} did not contain {hdf5.name}")
        archive.unlink()
        log(f"code15: {hdf5.name} ready")
    log(f"code15: {downloaded} files downloaded")
    return downloaded
