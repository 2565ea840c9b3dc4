import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from ravdess_dataset.sources import SourceError, download, extract_zip, find_audio, resolve_source
from tests.synthetic import write_corpus


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.payload`` at /data.zip with Range support; /cut drops the connection midway."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        payload = self.server.payload
        self.server.requests.append(self.headers.get("Range"))
        if self.path.startswith("/missing"):
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        else:
            self.send_response(200)
        body = payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/cut"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.payload, httpd.requests = b"", []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _zip_corpus(tmp_path: Path) -> Path:
    files = write_corpus(tmp_path / "src", actors=(3,), codes=((1, 1, 1, 1), (2, 2, 2, 2)))
    archive = tmp_path / "Audio_Speech_Actors_01-24.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in files:
            zf.write(f, f.relative_to(tmp_path / "src"))
    return archive


def test_folder_and_sample_sources(tmp_path):
    write_corpus(tmp_path, actors=(5,), codes=((1, 1, 1, 1),), suffix=".flac")
    (tmp_path / "notes.txt").write_text("not audio")
    assert resolve_source(str(tmp_path)) == tmp_path
    assert [p.name for p in find_audio(tmp_path)] == ["03-01-01-01-01-01-05.flac"]
    sample = find_audio(resolve_source("sample"))
    assert len(sample) == 120 and {p.parent.name for p in sample} == {"Actor_01", "Actor_22"}


def test_zip_source_extracts_once_per_content(tmp_path):
    archive = _zip_corpus(tmp_path)
    folder = resolve_source(str(archive), cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in find_audio(folder)) == ["03-01-01-01-01-01-03.wav", "03-01-02-02-02-02-03.wav"]
    marker = folder / ".extracted"
    assert resolve_source(str(archive), cache_dir=tmp_path / "cache") == folder  # the same zip: not extracted again
    assert marker.stat().st_mtime_ns == (folder / ".extracted").stat().st_mtime_ns
    other = tmp_path / "other" / archive.name  # another zip of the same name: its own files, not the first one's
    other.parent.mkdir()
    with zipfile.ZipFile(other, "w") as zf:
        zf.write(next(find_audio(folder).__iter__()), "Actor_07/03-01-05-01-01-01-07.wav")
    assert [p.name for p in find_audio(resolve_source(str(other), cache_dir=tmp_path / "cache"))] == ["03-01-05-01-01-01-07.wav"]


def test_damaged_zips_are_named_and_leave_nothing(tmp_path):
    archive = _zip_corpus(tmp_path)
    data = bytearray(archive.read_bytes())
    member = zipfile.ZipFile(archive).infolist()[0]
    start = member.header_offset + 30 + len(member.filename) + len(member.extra) + 100
    data[start : start + 8] = bytes(8)  # stored bytes changed: the CRC no longer matches
    bad_crc = tmp_path / "crc" / archive.name
    bad_crc.parent.mkdir()
    bad_crc.write_bytes(bytes(data))
    with pytest.raises(SourceError, match=f"{bad_crc}: damaged zip file .*CRC"):
        resolve_source(str(bad_crc), cache_dir=tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache" / "extracted").iterdir()]  # no half-extracted folder
    truncated = tmp_path / "cut" / archive.name
    truncated.parent.mkdir()
    truncated.write_bytes(archive.read_bytes()[: len(data) // 2])
    with pytest.raises(SourceError, match="damaged or truncated zip file"):
        resolve_source(str(truncated), cache_dir=tmp_path / "cache")


def test_zip_with_escaping_member_is_rejected(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Actor_01/03-01-01-01-01-01-01.wav", b"x")
        zf.writestr("../escaped.txt", b"gotcha")
    with pytest.raises(SourceError, match="outside the target"):
        extract_zip(archive, tmp_path / "out" / "evil")
    assert not (tmp_path / "out" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "evil").exists()


def test_url_download_resumes_and_verifies(tmp_path, server):
    archive = _zip_corpus(tmp_path)
    server.payload = archive.read_bytes()
    md5 = hashlib.md5(server.payload).hexdigest()
    url = f"http://127.0.0.1:{server.server_port}"
    target = tmp_path / "dl" / "data.zip"
    with pytest.raises(SourceError, match="connection lost|re-run to resume"):
        download(f"{url}/cut/data.zip", target, md5=md5)
    part = target.with_name("data.zip.part")
    assert 0 < part.stat().st_size < len(server.payload) and not target.exists()
    download(f"{url}/data.zip", target, md5=md5)
    assert server.requests[-1] == f"bytes={len(server.payload) // 2}-"  # resumed, not restarted
    assert target.read_bytes() == server.payload and not part.exists()
    folder = resolve_source(f"{url}/data.zip", cache_dir=tmp_path / "c2", md5=md5)
    assert len(find_audio(folder)) == 2


def test_url_bad_checksum_and_http_errors(tmp_path, server):
    server.payload = b"not the file you wanted"
    url = f"http://127.0.0.1:{server.server_port}"
    with pytest.raises(SourceError, match="checksum mismatch"):
        download(f"{url}/data.zip", tmp_path / "data.zip", md5="0" * 32)
    assert not (tmp_path / "data.zip").exists() and not (tmp_path / "data.zip.part").exists()
    with pytest.raises(SourceError, match="HTTP 404"):
        download(f"{url}/missing.zip", tmp_path / "m.zip")
    with pytest.raises(SourceError, match="no such file"):
        resolve_source(str(tmp_path / "nowhere"))
