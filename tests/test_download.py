"""Tests of `data_prep.download`, offline: a local HTTP server on 127.0.0.1 stands in for PhysioNet / Zenodo.

Resume with Range, fallback when Range is ignored, checksums, idempotency, SHA256SUMS parsing, archive
extraction that refuses escaping members, and `python -m data_prep SOURCE --download` end to end.
"""

from __future__ import annotations

import email.message
import hashlib
import io
import json
import socket
import tarfile
import threading
import urllib.parse
import urllib.request
import urllib.response
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from data_prep import download
from data_prep.__main__ import main
from data_prep.download import DownloadError, download_file, fetch, parse_sha256sums, safe_extract

GEORGIA = Path(__file__).resolve().parent / "data" / "challenge2021" / "georgia"
GEORGIA_RECORDS = ("E07500", "E07501")
DATA = bytes(range(256)) * 1200  # 307,200 bytes
SHA256 = hashlib.sha256(DATA).hexdigest()


class FileServer(ThreadingHTTPServer):
    """Serves `files` (path -> bytes); honours Range unless told not to; can cut a body short."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.honour_range = True
        self.cut: int | None = None
        self.requests: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/"


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:
        server = self.server
        range_header = self.headers.get("Range")
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        server.requests.append((path, range_header))
        data = server.files.get(path)
        if data is None:
            self.send_error(404)
            return
        start = int(range_header.removeprefix("bytes=").rstrip("-")) if range_header and server.honour_range else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:][: server.cut])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def server() -> Iterator[FileServer]:
    httpd = FileServer()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


# --- download_file ---------------------------------------------------------------------------------


def test_resume_appends_to_the_partial_file(
    server: FileServer, opener: urllib.request.OpenerDirector, tmp_path: Path
) -> None:
    server.files["f.bin"] = DATA
    dest = tmp_path / "sub" / "f.bin"
    dest.parent.mkdir()
    (tmp_path / "sub" / "f.bin.part").write_bytes(DATA[:100_000])
    assert download_file(server.url + "f.bin", dest, SHA256, opener=opener)
    assert dest.read_bytes() == DATA
    assert not dest.with_name("f.bin.part").exists()
    assert server.requests == [("f.bin", "bytes=100000-")]


def test_server_ignoring_range_restarts_from_scratch(
    server: FileServer, opener: urllib.request.OpenerDirector, tmp_path: Path
) -> None:
    server.files["f.bin"] = DATA
    server.honour_range = False
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(b"stale bytes that must not stay in front")
    assert download_file(server.url + "f.bin", dest, SHA256, opener=opener)
    assert dest.read_bytes() == DATA
    assert server.requests == [("f.bin", "bytes=39-")]


def test_interrupted_download_is_resumed(
    server: FileServer, opener: urllib.request.OpenerDirector, tmp_path: Path
) -> None:
    server.files["f.bin"] = DATA
    server.cut = 50_000
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="re-run to resume"):
        download_file(server.url + "f.bin", dest, SHA256, opener=opener)
    assert dest.with_name("f.bin.part").stat().st_size == 50_000
    server.cut = None
    assert download_file(server.url + "f.bin", dest, SHA256, opener=opener)
    assert dest.read_bytes() == DATA
    assert server.requests == [("f.bin", None), ("f.bin", "bytes=50000-")]


def test_complete_part_answered_416_is_verified(
    server: FileServer, opener: urllib.request.OpenerDirector, tmp_path: Path
) -> None:
    server.files["f.bin"] = DATA
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(DATA)
    assert download_file(server.url + "f.bin", dest, SHA256, opener=opener)
    assert dest.read_bytes() == DATA
    assert server.requests == [("f.bin", f"bytes={len(DATA)}-")]


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_checksum_mismatch_is_refused(
    server: FileServer, opener: urllib.request.OpenerDirector, tmp_path: Path, algorithm: str
) -> None:
    server.files["f.bin"] = DATA
    dest = tmp_path / "f.bin"
    wrong = "0" * len(hashlib.new(algorithm).hexdigest())
    with pytest.raises(DownloadError) as excinfo:
        download_file(server.url + "f.bin", dest, opener=opener, **{f"expected_{algorithm}": wrong})
    message = str(excinfo.value)
    assert f"{algorithm} mismatch for f.bin" in message
    assert f"expected {wrong}" in message
    assert f"got {hashlib.new(algorithm, DATA).hexdigest()}" in message
    assert not dest.exists()
    assert not dest.with_name("f.bin.part").exists()


def test_complete_file_is_skipped_and_corrupt_one_fetched_again(
    server: FileServer, opener: urllib.request.OpenerDirector, tmp_path: Path
) -> None:
    server.files["f.bin"] = DATA
    dest = tmp_path / "f.bin"
    md5 = hashlib.md5(DATA).hexdigest()
    assert download_file(server.url + "f.bin", dest, SHA256, md5, opener=opener)
    assert not download_file(server.url + "f.bin", dest, SHA256.upper(), md5, opener=opener)
    assert len(server.requests) == 1
    dest.write_bytes(b"corrupt")
    assert download_file(server.url + "f.bin", dest, SHA256, opener=opener)
    assert dest.read_bytes() == DATA
    assert len(server.requests) == 2


def test_file_url_and_injected_opener(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(DATA)
    dest = tmp_path / "out" / "f.bin"
    dest.parent.mkdir()
    dest.with_name("f.bin.part").write_bytes(b"xx")  # file:// ignores Range: full download
    assert download_file(source.as_uri(), dest, SHA256)
    assert dest.read_bytes() == DATA


def test_wrong_content_range_is_refused(tmp_path: Path) -> None:
    class Fake:
        def open(self, request: urllib.request.Request, data: None = None, timeout: float = 0) -> object:
            headers = email.message.Message()
            headers["Content-Range"] = f"bytes 0-{len(DATA) - 1}/{len(DATA)}"
            return urllib.response.addinfourl(io.BytesIO(DATA), headers, request.full_url, code=206)

    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(DATA[:10])
    with pytest.raises(DownloadError, match="answered Range bytes=10-"):
        download_file("https://example.org/f.bin", dest, opener=Fake())


def test_unreachable_and_missing(server: FileServer, opener: urllib.request.OpenerDirector, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="cannot download .*without network access"):
        download_file(closed_port_url() + "f.bin", tmp_path / "f.bin", opener=opener)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url + "missing.bin", tmp_path / "f.bin", opener=opener)
    assert not (tmp_path / "f.bin").exists()


# --- parse_sha256sums --------------------------------------------------------------------------------

SUMS = f"""\
{"a" * 64}  LICENSE.txt
{"B" * 64}  ptbxl_database.csv
{"c" * 64}  records500/00000/00001_hr.dat

{"d" * 64} *records500/00000/00001_hr.hea
{"e" * 64}  training/georgia/g1/E00001.mat
"""


def test_parse_sha256sums() -> None:
    assert parse_sha256sums(SUMS) == {
        "LICENSE.txt": "a" * 64,
        "ptbxl_database.csv": "b" * 64,
        "records500/00000/00001_hr.dat": "c" * 64,
        "records500/00000/00001_hr.hea": "d" * 64,
        "training/georgia/g1/E00001.mat": "e" * 64,
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [(f"{'a' * 63}  short.txt", "line 1 is not"), (f"{'a' * 64}  ../evil.txt", "contains '..'")],
)
def test_parse_sha256sums_refuses(text: str, match: str) -> None:
    with pytest.raises(DownloadError, match=match):
        parse_sha256sums(text)


# --- safe_extract ------------------------------------------------------------------------------------


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for member in members:
            tf.addfile(member, io.BytesIO(b"ok") if member.isfile() else None)
    return path


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.size = kind, linkname, 2 if kind == tarfile.REGTYPE else 0
    return member


@pytest.mark.parametrize(
    ("kind", "members", "bad"),
    [
        ("zip", {"good.txt": b"ok", "../evil.txt": b"x"}, "../evil.txt"),
        ("zip", {"good.txt": b"ok", "/abs/evil.txt": b"x"}, "/abs/evil.txt"),
        ("tar", [tar_member("good.txt"), tar_member("link", tarfile.SYMTYPE, "../../outside")], "link"),
        ("tar", [tar_member("good.txt"), tar_member("link", tarfile.SYMTYPE, "/etc/passwd")], "link"),
        ("tar", [tar_member("good.txt"), tar_member("hard", tarfile.LNKTYPE, "../outside")], "hard"),
        ("tar", [tar_member("good.txt"), tar_member("a/../../evil.txt")], "a/../../evil.txt"),
        ("tar", [tar_member("good.txt"), tar_member("fifo", tarfile.FIFOTYPE)], "fifo"),
    ],
)
def test_safe_extract_refuses_escaping_members(tmp_path: Path, kind: str, members: object, bad: str) -> None:
    archive = make_zip(tmp_path / "a.zip", members) if kind == "zip" else make_tar(tmp_path / "a.tgz", members)
    target = tmp_path / "target"
    with pytest.raises(DownloadError, match="refusing to extract") as excinfo:
        safe_extract(archive, target)
    assert repr(bad) in str(excinfo.value)
    assert not target.exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_tar_with_internal_links(tmp_path: Path) -> None:
    members = [
        tar_member("d", tarfile.DIRTYPE),
        tar_member("d/f.txt"),
        tar_member("d/link", tarfile.SYMTYPE, "f.txt"),
        tar_member("hard", tarfile.LNKTYPE, "d/f.txt"),
    ]
    safe_extract(make_tar(tmp_path / "a.tgz", members), tmp_path / "t")
    assert (tmp_path / "t" / "d" / "link").is_symlink()
    assert [(tmp_path / "t" / name).read_bytes() for name in ("d/f.txt", "d/link", "hard")] == [b"ok"] * 3


def test_safe_extract_refuses_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"not an archive")
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        safe_extract(tmp_path / "x.zip", tmp_path / "t")


def test_extracted_records_dump(tmp_path: Path) -> None:
    members = {
        f"g1/{record}{suffix}": (GEORGIA / f"{record}{suffix}").read_bytes()
        for record in GEORGIA_RECORDS
        for suffix in (".hea", ".mat")
    }
    raw = tmp_path / "georgia"
    safe_extract(make_zip(tmp_path / "georgia.zip", members), raw)
    argv = ["georgia", "--raw", str(raw), "--out", str(tmp_path / "out"), "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    index = pd.read_csv(tmp_path / "out" / "georgia" / "index.csv")
    assert list(index["record_id"]) == [f"g1/{record}" for record in GEORGIA_RECORDS]


# --- fetch and the CLI -------------------------------------------------------------------------------


def serve_physionet(server: FileServer, files: dict[str, bytes], unlisted_sums: str = "") -> None:
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {path}\n" for path, data in files.items())
    server.files.update(files)
    server.files["SHA256SUMS.txt"] = (sums + unlisted_sums).encode()


def test_cli_download_then_dump(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(download.PHYSIONET_PROJECTS, "challenge2021", server.url)
    files = {
        f"training/georgia/g1/{record}{suffix}": (GEORGIA / f"{record}{suffix}").read_bytes()
        for record in GEORGIA_RECORDS
        for suffix in (".hea", ".mat")
    }
    serve_physionet(server, files, unlisted_sums=f"{'0' * 64}  training/cpsc_2018/g1/A0001.hea\n")  # 404 if asked
    raw, out = tmp_path / "raw" / "georgia", tmp_path / "out"
    argv = ["georgia", "--raw", str(raw), "--out", str(out), "--download", "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    assert sorted(path for path, _ in server.requests) == sorted(["SHA256SUMS.txt", *files])
    assert len(pd.read_csv(out / "georgia" / "index.csv")) == len(GEORGIA_RECORDS)
    server.requests.clear()
    assert main(argv) == 0  # everything verified locally, nothing fetched
    assert server.requests == []


def test_cli_download_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(download.PHYSIONET_PROJECTS, "challenge2021", closed_port_url())
    argv = ["georgia", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--download", "--no-progress"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "cannot download" in error
    assert "without network access" in error
    assert "--raw" in error


def test_fetch_ptbxl_keeps_one_rate(
    server: FileServer, opener: urllib.request.OpenerDirector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(download.PHYSIONET_PROJECTS, "ptbxl", server.url)
    files = {
        "ptbxl_database.csv": b"ecg_id\n1\n",
        "records500/00000/00001_hr.dat": b"500",
        "records100/00000/00001_lr.dat": b"100",
    }
    serve_physionet(server, files)
    assert fetch("ptbxl", tmp_path, rate=500, opener=opener, progress=False, log=lambda _: None) == 2
    assert (tmp_path / "records500/00000/00001_hr.dat").read_bytes() == b"500"
    assert not (tmp_path / "records100").exists()


def test_fetch_code15_extracts_and_removes_zips(
    server: FileServer, opener: urllib.request.OpenerDirector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "CODE15_RECORD_URL", server.url + "api/records/4916206")
    part0 = make_zip(tmp_path / "exams_part0.zip", {"exams_part0.hdf5": b"hdf5 bytes"}).read_bytes()
    payloads = {"exams.csv": b"exam_id,trace_file\n", "exams_part0.zip": part0, "README.md": b"x"}
    raw = tmp_path / "code15"
    record = {
        "files": [
            {"key": key, "checksum": f"md5:{hashlib.md5(data).hexdigest()}", "links": {"self": server.url + key}}
            for key, data in payloads.items()
        ]
    }
    server.files.update(payloads)
    server.files["api/records/4916206"] = json.dumps(record).encode()
    log: list[str] = []
    assert fetch("code15", raw, opener=opener, log=log.append) == 2
    assert (raw / "exams_part0.hdf5").read_bytes() == b"hdf5 bytes"
    assert sorted(p.name for p in raw.iterdir()) == ["exams.csv", "exams_part0.hdf5", "zenodo_record.json"]
    assert fetch("code15", raw, opener=opener, log=log.append) == 0
    assert [path for path, _ in server.requests] == ["api/records/4916206", "exams.csv", "exams_part0.zip"]
