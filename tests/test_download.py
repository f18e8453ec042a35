"""Downloads against a loopback HTTP server started by the test: checksums, mirrors,
cut-off transfers and failures leave nothing behind; dataset classes download,
unpack and load; unsafe archives are refused."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import struct
import tarfile
import threading

import numpy as np
import pytest

from kiln.data import CIFAR10, MNIST
from kiln.data.datasets import DownloadError, check_integrity, download_url, extract_tar


class Server:
    """Serves ``routes[path] = (body, mode)``; mode "ok", or "cut" to declare the full
    length and close after half of it. Counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, mode = server.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if mode == "ok" else body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "*")  # the loopback server is never behind a proxy
    monkeypatch.setenv("NO_PROXY", "*")
    s = Server()
    yield s
    s.close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


PAYLOAD = bytes(range(256)) * 4000  # ~1 MB, so a cut-off transfer spans several reads


def test_download_checks_md5_and_sha256(server, tmp_path):
    server.routes["/f.bin"] = (PAYLOAD, "ok")
    path = download_url(server.url + "/f.bin", tmp_path / "cache", "f.bin", md5=md5(PAYLOAD),
                        sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["f.bin"]
    assert check_integrity(path, md5=md5(PAYLOAD))
    # Present and intact: not fetched again.
    download_url(server.url + "/f.bin", tmp_path / "cache", "f.bin", md5=md5(PAYLOAD))
    assert server.hits["/f.bin"] == 1


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    server.routes["/f.bin"] = (PAYLOAD, "ok")
    with pytest.raises(DownloadError, match="checksum failed: md5 .* published 0+"):
        download_url(server.url + "/f.bin", tmp_path, "f.bin", md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_cut_off_transfer_leaves_nothing(server, tmp_path):
    server.routes["/f.bin"] = (PAYLOAD, "cut")
    with pytest.raises(DownloadError, match="f.bin"):
        download_url(server.url + "/f.bin", tmp_path, "f.bin", md5=md5(PAYLOAD))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DownloadError):  # without a checksum the length still catches it
        download_url(server.url + "/f.bin", tmp_path, "f.bin")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_file_in_cache_is_replaced(server, tmp_path):
    server.routes["/f.bin"] = (PAYLOAD, "ok")
    (tmp_path / "f.bin").write_bytes(b"stale")
    download_url(server.url + "/f.bin", tmp_path, "f.bin", md5=md5(PAYLOAD))
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_failed_replacement_keeps_the_old_file(server, tmp_path):
    server.routes["/f.bin"] = (PAYLOAD, "cut")
    (tmp_path / "f.bin").write_bytes(b"old")
    with pytest.raises(DownloadError):
        download_url(server.url + "/f.bin", tmp_path, "f.bin", md5=md5(PAYLOAD))
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    assert (tmp_path / "f.bin").read_bytes() == b"old"


def test_mirrors_are_tried_in_order(server, tmp_path):
    server.routes["/b/f.bin"] = (PAYLOAD, "ok")
    urls = [server.url + "/a/f.bin", "http://127.0.0.1:1/f.bin", server.url + "/b/f.bin"]
    download_url(urls, tmp_path, "f.bin", md5=md5(PAYLOAD))
    assert server.hits == {"/a/f.bin": 1, "/b/f.bin": 1}
    with pytest.raises(DownloadError, match="404.*127.0.0.1:1/f.bin"):
        download_url(urls[:2], tmp_path, "g.bin")
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def idx(array: np.ndarray) -> bytes:
    return (bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.tobytes())


def test_mnist_download(server, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 6).astype(np.uint8)
    files = {"t10k-images-idx3-ubyte.gz": gzip.compress(idx(images)),
             "t10k-labels-idx1-ubyte.gz": gzip.compress(idx(labels))}
    for name, body in files.items():
        server.routes[f"/mnist/{name}"] = (body, "ok")
    monkeypatch.setattr(MNIST, "mirrors", [server.url + "/down/", server.url + "/mnist/"])
    monkeypatch.setattr(MNIST, "resources", {k: md5(v) for k, v in files.items()})
    ds = MNIST(tmp_path, train=False, download=True)
    np.testing.assert_array_equal(ds.tensors[0].numpy()[:, 0], images)
    np.testing.assert_array_equal(ds.tensors[1].numpy(), labels)
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(files)
    MNIST(tmp_path, train=False, download=True)  # already there: no new request
    assert server.hits[f"/mnist/{next(iter(files))}"] == 1


def test_mnist_download_with_bad_checksum_leaves_nothing(server, tmp_path, monkeypatch):
    server.routes["/t10k-images-idx3-ubyte.gz"] = (b"garbage", "ok")
    monkeypatch.setattr(MNIST, "mirrors", [server.url + "/"])
    with pytest.raises(DownloadError, match="t10k-images-idx3-ubyte.gz"):
        MNIST(tmp_path, train=False, download=True)
    assert list((tmp_path / "MNIST" / "raw").iterdir()) == []


def tar_bytes(members: dict[str, bytes], symlink: tuple[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type = tarfile.SYMTYPE
            info.linkname = symlink[1]
            tar.addfile(info)
    return buffer.getvalue()


def cifar_binary_members(top: str) -> tuple[dict[str, bytes], np.ndarray]:
    rng = np.random.default_rng(1)
    records = rng.integers(0, 256, (2, 3073), dtype=np.uint8)
    records[:, 0] %= 10
    members = {f"{top}/data_batch_{i}.bin": records.tobytes() for i in range(1, 6)}
    members[f"{top}/test_batch.bin"] = records.tobytes()
    members[f"{top}/batches.meta.txt"] = "\n".join(f"c{i}" for i in range(10)).encode()
    return members, records


def test_cifar_download_and_unpack(server, tmp_path, monkeypatch):
    members, records = cifar_binary_members("cifar-10-batches-bin")
    archive = tar_bytes(members)
    server.routes["/cifar-10-binary.tar.gz"] = (archive, "ok")
    monkeypatch.setattr(CIFAR10, "mirrors", [server.url + "/"])
    monkeypatch.setattr(CIFAR10, "archives", {
        **CIFAR10.archives,
        "binary": ("cifar-10-binary.tar.gz", md5(archive), "cifar-10-batches-bin")})
    ds = CIFAR10(tmp_path, train=False, download=True, format="binary")
    np.testing.assert_array_equal(ds.tensors[0].numpy().reshape(2, -1), records[:, 1:])
    np.testing.assert_array_equal(ds.tensors[1].numpy(), records[:, 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-bin",
                                                          "cifar-10-binary.tar.gz"]


@pytest.mark.parametrize("bad", ["../escape.bin", "/abs.bin", "other/x.bin", "symlink"])
def test_unsafe_archives_are_refused(tmp_path, bad):
    members, _ = cifar_binary_members("top")
    if bad == "symlink":
        archive = tar_bytes(members, symlink=("top/link", "/etc/passwd"))
    else:
        archive = tar_bytes({**members, bad: b"x"})
    (tmp_path / "a.tar.gz").write_bytes(archive)
    with pytest.raises(ValueError, match="extract_tar: .*(outside top/|not a plain file)"):
        extract_tar(tmp_path / "a.tar.gz", tmp_path, "top")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


def test_truncated_archive_leaves_nothing(tmp_path):
    members, _ = cifar_binary_members("top")
    archive = tar_bytes(members)
    (tmp_path / "a.tar.gz").write_bytes(archive[: len(archive) // 2])
    with pytest.raises((tarfile.TarError, EOFError, OSError)):
        extract_tar(tmp_path / "a.tar.gz", tmp_path, "top")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


def test_download_url_needs_a_url(tmp_path):
    with pytest.raises(ValueError, match="download_url: no URL"):
        download_url([], tmp_path, "x")
