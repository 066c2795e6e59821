"""A stand-in for the Hugging Face Hub's download API on the loopback interface, so that ``huggingface_hub`` itself
downloads and lays out its cache in tests without the network. It answers the three requests
``snapshot_download`` makes (revision info, file tree, file) for folders given as repositories, and the Hub's
``X-Error-Code`` for an unknown repository, revision or file."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def handler_for(repos: dict[str, Path]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.answer(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self.answer(body=False)

        def answer(self, body: bool) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6:  # /api/models/OWNER/NAME/{revision|tree}/REV
                repo, kind, revision, name = "/".join(parts[2:4]), parts[4], parts[5], ""
            elif len(parts) >= 5 and parts[2] == "resolve":  # /OWNER/NAME/resolve/REV/FILE
                repo, kind, revision, name = "/".join(parts[:2]), "file", parts[3], "/".join(parts[4:])
            else:
                return self.reply(404, b"", {"X-Error-Code": "EntryNotFound"}, body)
            if repo not in repos:
                return self.reply(404, b"", {"X-Error-Code": "RepoNotFound", "X-Error-Message": "RepoNotFound"}, body)
            if revision not in ("main", COMMIT):
                headers = {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "RevisionNotFound"}
                return self.reply(404, b"", headers, body)
            folder = repos[repo]
            files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
            if kind == "revision":
                info = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
                return self.reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
            if kind == "tree":
                tree = [
                    {"type": "file", "path": f, "size": (folder / f).stat().st_size, "oid": digest(folder / f, "sha1")}
                    for f in files
                ]
                return self.reply(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body)
            if name not in files:
                return self.reply(404, b"", {"X-Error-Code": "EntryNotFound"}, body)
            data = (folder / name).read_bytes()
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{digest(folder / name, "sha256")}"'}
            return self.reply(200, data, headers, body)

        def reply(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


def digest(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


@contextlib.contextmanager
def local_hub(repos: dict[str, Path]) -> Iterator[str]:
    """Serve ``repos`` (``OWNER/NAME`` -> folder) on 127.0.0.1; yields the endpoint URL (for ``HF_ENDPOINT``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(repos))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def point_huggingface_hub(monkeypatch: pytest.MonkeyPatch, url: str, offline: bool = False) -> None:
    """Make ``huggingface_hub`` (whose settings are read at import) use the endpoint ``url`` and offline mode."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "ENDPOINT", url)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", offline)
