"""The downloader against an in-memory S3 client: many small files are fetched whole and checked, and a part
file is held open only while its object is being fetched (not for every file at once)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

from mlctl.io import IO
from mlctl.storage.transfer import Download, Downloader, Progress


def _open_part_files() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").endswith(".part")
        except OSError:
            pass
    return n


class Client:
    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects
        self.most_open = 0
        self.lock = threading.Lock()

    def get_object(self, Bucket, Key, **extra):  # noqa: N803 - boto3's names
        with self.lock:
            self.most_open = max(self.most_open, _open_part_files())
        return {"Body": io.BytesIO(self.objects[Key])}


def test_many_small_files_hold_few_descriptors(tmp_path: Path):
    objects = {f"run/f{i}": os.urandom(100 + i) for i in range(200)}
    client = Client(objects)
    items = [Download(key, key.split("/")[1], len(data), hashlib.md5(data).hexdigest(), tmp_path / key.split("/")[1])
             for key, data in objects.items()]
    progress = Progress(IO.test(), "downloading", len(items), sum(i.size for i in items))
    Downloader(client, "bucket", "S3", progress, workers=4).run(items)
    for item in items:
        assert item.dest.read_bytes() == objects[item.key]
    assert not list(tmp_path.glob("*.part*"))
    assert 1 <= client.most_open <= 4  # at most one part file per worker is open
