"""Fetch: copy from a folder, or download NASA's nested zip from a local HTTP server (no other network)."""

from __future__ import annotations

import http.server
import io
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.data import fetch
from core.errors import UserError


def nasa_zip(text: Callable[[str], str], names: list[str]) -> bytes:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            z.writestr(f"{name}.txt", "\n".join(text(name).splitlines()[:50]) + "\n")
        z.writestr("readme.txt", "C-MAPSS\n")
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("6. Turbofan Engine Degradation Simulation Data Set/CMAPSSData.zip", inner.getvalue())
    return outer.getvalue()


@pytest.fixture
def serve() -> Iterator[Callable[[bytes], str]]:
    """Serve given bytes at http://127.0.0.1:<port>/nasa.zip from a thread."""
    servers = []

    def start(payload: bytes) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                """Keep test output quiet."""

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/nasa.zip"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


ALL = [f"{kind}_{subset}" for kind in ("train", "test", "RUL") for subset in ("FD001", "FD002", "FD003", "FD004")]


def test_download_extracts_the_twelve_files(pm_home: Path, tmp_path: Path, cmapss_text, serve) -> None:
    url = serve(nasa_zip(cmapss_text, ALL))
    seen: list[float] = []
    result = fetch.fetch(tmp_path / "dest", source=url, progress=lambda f, m: seen.append(f))
    names = sorted(Path(p).name for p in result["files"])
    assert names == sorted(fetch.EXPECTED_FILES)
    expected = "\n".join(cmapss_text("RUL_FD001").splitlines()[:50]) + "\n"
    assert (tmp_path / "dest" / "RUL_FD001.txt").read_text() == expected
    assert (tmp_path / "dest" / "train_FD004.txt").read_text().startswith("1 1 ")
    assert seen[-1] == 1.0 and seen == sorted(seen)
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == sorted(fetch.EXPECTED_FILES)


def test_download_missing_files_is_refused(pm_home: Path, tmp_path: Path, cmapss_text, serve) -> None:
    url = serve(nasa_zip(cmapss_text, [n for n in ALL if n != "test_FD003"]))
    with pytest.raises(UserError, match=r"lacks test_FD003.txt; it is not NASA's complete C-MAPSS zip\.$"):
        fetch.fetch(tmp_path / "dest", source=url)
    assert list((tmp_path / "dest").iterdir()) == []


def test_network_failure_names_the_way_out(pm_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/nasa.zip"
    monkeypatch.setenv("PM_CMAPSS_URL", url)
    monkeypatch.delenv("PM_DATA_DIR", raising=False)
    with pytest.raises(UserError) as info:
        fetch.fetch(tmp_path / "dest")
    message = str(info.value)
    assert message.startswith(f"Could not download {url}: ")
    assert message.endswith("Set PM_DATA_DIR to a folder with the files or upload them on the Data page.")


def test_copy_from_data_dir(pm_home: Path, tmp_path: Path, cmapss_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_DATA_DIR", str(cmapss_dir))
    result = fetch.fetch(tmp_path / "dest")
    assert len(result["files"]) == 12 and result["source"] == str(cmapss_dir)
    monkeypatch.setenv("PM_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="does not exist"):
        fetch.fetch(tmp_path / "dest2")


def test_download_nested_too_deep_is_refused_without_recursion(pm_home: Path, tmp_path: Path, serve) -> None:
    from bench import hostile_files

    deep = hostile_files.deep_zip(tmp_path, 1500, "train_FD001.txt", b"1 1 0 0 100\n")
    url = serve(deep.read_bytes())
    with pytest.raises(UserError, match=r"nests zip files more than 3 deep, the limit \(PM_MAX_ARCHIVE_DEPTH\)"):
        fetch.fetch(tmp_path / "dest", source=url)
    assert list((tmp_path / "dest").iterdir()) == []
