"""Moving bytes: parallel downloads that resume, uploads with multipart, progress on stderr.

Downloads (docs/artifacts.md, "Transfers"):
- every file goes to `<final>.part` and is renamed to its final name only when complete and checked: the
  size, and the MD5 for single-part objects (whose ETag is their MD5); Ctrl-C or an error never leaves a
  file under the final name;
- an object above MULTIPART_THRESHOLD is fetched as CHUNK-sized Range requests by the shared thread pool;
  `<final>.part.json` records the object's ETag, size and the chunks written, so an interrupted get
  fetches only what is missing (for a one-request object: a Range continuing where the .part ends), and
  only when the recorded ETag still matches the object's; otherwise it starts afresh;
- transient failures (timeouts, dropped connections, 5xx) are retried with exponential backoff, each
  retry continuing from the last byte written.

Uploads: small files one PutObject each on the thread pool; large ones through s3transfer (boto3's
TransferConfig: multipart above MULTIPART_THRESHOLD, CHUNK parts, several in parallel).

Objects up to SMALL_OBJECT go through the lean client (storage/lean.py: botocore's signer, one kept-alive
connection per thread), whose requests cost half the CPU of botocore's; the rest through botocore.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from mlctl.errors import MlctlError

MiB = 1024 * 1024
CHUNK = 8 * MiB
MULTIPART_THRESHOLD = 16 * MiB
RESUME_MIN = 1 * MiB  # smaller files restart instead of resuming (no .part.json for them)
SMALL_OBJECT = 1 * MiB  # up to this size, an object is one request of the lean client (storage/lean.py)
WORKERS = 8  # threads per transfer: more only contend for the interpreter lock on small files (measured)
READ_BLOCK = 1 * MiB
TRIES = 4
BACKOFF = 0.5  # seconds, doubled after every failed try
PART_SUFFIX = ".part"
META_SUFFIX = ".part.json"
_SINGLE_PART_ETAG = re.compile(r"^[0-9a-f]{32}$")


# ---- pure decisions ------------------------------------------------------------------------------------

def chunks(size: int, chunk: int = CHUNK) -> list[tuple[int, int]]:
    """[start, end) byte ranges covering size (one empty range for an empty object)."""
    if size <= 0:
        return [(0, 0)]
    return [(start, min(start + chunk, size)) for start in range(0, size, chunk)]


def chunk_size_for(size: int, threshold: int = MULTIPART_THRESHOLD, chunk: int = CHUNK) -> int:
    """Objects up to threshold come in one request (one chunk); larger ones in chunk-sized ranges."""
    return max(size, 1) if size <= threshold else chunk


def is_single_part_etag(etag: str) -> bool:
    """A single-part upload's ETag is the MD5 of its bytes; a multipart one is `<md5>-<parts>`."""
    return bool(_SINGLE_PART_ETAG.match(etag or ""))


@dataclass(frozen=True)
class Plan:
    fresh: bool  # start from an empty .part
    done: frozenset[int] = frozenset()  # chunk indexes already written
    offset: int = 0  # one-request objects: continue from here


def resume_plan(recorded: dict | None, part_size: int | None, size: int, etag: str, chunk: int) -> Plan:
    """What an interrupted download may keep: recorded is the .part.json (None when absent), part_size the
    .part file's size (None when absent). Anything inconsistent starts afresh."""
    if (recorded is None or part_size is None or not etag or recorded.get("etag") != etag
            or recorded.get("size") != size or recorded.get("chunk") != chunk or part_size > size):
        return Plan(fresh=True)
    ranges = chunks(size, chunk)
    if len(ranges) == 1:
        return Plan(fresh=False, offset=part_size)
    done = frozenset(i for i in recorded.get("done") or [] if isinstance(i, int) and 0 <= i < len(ranges)
                     and ranges[i][1] <= part_size)
    return Plan(fresh=False, done=done)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# ---- progress ------------------------------------------------------------------------------------------

class Progress:
    """Bytes, speed and ETA on a terminal (rich, stderr); plain lines when stderr is not a terminal."""

    def __init__(self, io, verb: str, files: int, total: int, *, verbose: int = 0):
        self.io, self.verb, self.files, self.total, self.verbose = io, verb, files, total, verbose
        self.bytes = 0
        self.files_done = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._marks: dict[str, int] = {}
        self._bar = None
        self._task = None

    def __enter__(self) -> Progress:
        if self.io.stderr_tty:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                            TransferSpeedColumn(), TimeRemainingColumn(), console=self.io.err_console)
            self._bar.start()
            self._task = self._bar.add_task(self._description(), total=self.total)
        else:
            self.io.err(f"{self.verb}: {self.files} file(s), {human_bytes(self.total)}")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _description(self) -> str:
        return f"{self.verb} {self.files_done}/{self.files} files"

    def start_file(self, name: str, size: int) -> None:
        if self._bar is None and size > MULTIPART_THRESHOLD:
            with self._lock:
                self._marks[name] = 0
            self.io.err(f"{self.verb} {name}: started ({human_bytes(size)})")

    def advance(self, n: int, name: str | None = None, size: int = 0) -> None:
        line = None
        with self._lock:
            self.bytes += n
            if self._bar is not None:
                self._bar.update(self._task, advance=n)
            elif name in self._marks and size:
                self._marks[name] += n
                quarter = self._marks[name] * 4 // size
                if quarter > self._marks.get(name + "\0q", 0) and quarter < 4:
                    self._marks[name + "\0q"] = quarter
                    line = f"{self.verb} {name}: {quarter * 25}% ({human_bytes(self._marks[name])} of {human_bytes(size)})"
        if line:
            self.io.err(line)

    def file_done(self, name: str, size: int) -> None:
        with self._lock:
            self.files_done += 1
            if self._bar is not None:
                self._bar.update(self._task, description=self._description())
        if self._bar is None and (self.verbose or size > MULTIPART_THRESHOLD):
            self.io.err(f"{self.verb} {name}: done ({human_bytes(size)})")

    def summary(self) -> str:
        seconds = max(time.monotonic() - self.started, 1e-6)
        return (f"{self.files_done} file(s), {human_bytes(self.bytes)} in {seconds:.1f} s "
                f"({human_bytes(self.bytes / seconds)}/s)")


# ---- the pool ------------------------------------------------------------------------------------------

class Cancelled(Exception):
    """A worker saw the cancel flag (Ctrl-C or another task's failure)."""


def _run_tasks(tasks: list[Callable[[], None]], workers: int, cancel: threading.Event) -> None:
    """Run tasks on a thread pool; the first failure (or Ctrl-C) cancels the rest and is raised."""
    if not tasks:
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="mlctl-s3")
    try:
        pending = {pool.submit(t) for t in tasks}
        while pending:
            # a timeout keeps the main thread responsive to Ctrl-C
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            for fut in done:
                exc = fut.exception()
                if exc is not None and not isinstance(exc, Cancelled):
                    raise exc
    except BaseException:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _transient(e: Exception) -> bool:
    from botocore import exceptions as bx

    if isinstance(e, bx.ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return isinstance(status, int) and status >= 500
    return isinstance(e, (bx.ReadTimeoutError, bx.ConnectTimeoutError, bx.EndpointConnectionError,
                          bx.ConnectionClosedError, bx.ResponseStreamingError, bx.IncompleteReadError,
                          TimeoutError, ConnectionError))


def _retrying(what: str, endpoint: str, cancel: threading.Event, attempt: Callable[[], None]) -> None:
    """attempt() until it succeeds; transient errors are retried with backoff (attempt resumes itself)."""
    from mlctl.storage.client import translate

    delay = BACKOFF
    for n in range(1, TRIES + 1):
        if cancel.is_set():
            raise Cancelled
        try:
            attempt()
            return
        except Cancelled:
            raise
        except Exception as e:  # noqa: BLE001 - sorted into transient / final below
            if isinstance(e, MlctlError):
                raise
            if n == TRIES or not _transient(e):
                raise translate(e, what, endpoint) from None  # (translate re-raises what it does not know)
            if cancel.wait(delay):  # backoff, cut short by a cancel
                raise Cancelled from None
            delay *= 2


# ---- downloads -----------------------------------------------------------------------------------------

@dataclass
class Download:
    key: str  # absolute key
    name: str  # path inside the run (shown, and where it goes under the destination)
    size: int
    etag: str
    dest: Path


@dataclass
class _State:
    item: Download
    chunk: int
    ranges: list[tuple[int, int]]
    plan: Plan
    fd: int = -1
    done: set[int] = field(default_factory=set)
    remaining: int = 0
    md5: object | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def part(self) -> Path:
        return self.item.dest.with_name(self.item.dest.name + PART_SUFFIX)

    @property
    def meta(self) -> Path:
        return self.item.dest.with_name(self.item.dest.name + META_SUFFIX)


class _Transfers:
    """What downloads and uploads share: the client, the bucket, the progress, the pool's size, the chunk and
    multipart threshold, and the cancel event Ctrl-C sets."""

    def __init__(self, client, bucket: str, endpoint: str, progress: Progress, *, workers: int = WORKERS,
                 chunk: int = CHUNK, threshold: int = MULTIPART_THRESHOLD, small=None):
        self.client, self.bucket, self.endpoint, self.progress = client, bucket, endpoint, progress
        self.workers, self.chunk, self.threshold = workers, chunk, threshold
        # objects up to SMALL_OBJECT bytes: the lean client (storage/lean.py) when one is given
        self.small = small or client
        self.cancel = threading.Event()


class Downloader(_Transfers):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.resumed: list[str] = []

    def run(self, items: list[Download]) -> None:
        states = [self._prepare(item) for item in items]
        tasks: list[Callable[[], None]] = []
        for st in states:
            todo = [i for i in range(len(st.ranges)) if i not in st.plan.done]
            st.remaining = len(todo)
            st.done = set(st.plan.done)
            if not todo:
                tasks.append(lambda st=st: self._finish(st))
            tasks += [lambda st=st, i=i: self._chunk(st, i) for i in todo]
        try:
            _run_tasks(tasks, self.workers, self.cancel)
        finally:
            for st in states:
                if st.fd >= 0:
                    os.close(st.fd)
                    st.fd = -1

    def _prepare(self, item: Download) -> _State:
        chunk = chunk_size_for(item.size, self.threshold, self.chunk)
        st = _State(item, chunk, chunks(item.size, chunk), Plan(fresh=True))
        item.dest.parent.mkdir(parents=True, exist_ok=True)
        part_size = st.part.stat().st_size if st.part.exists() else None
        recorded = None
        if st.meta.exists():
            try:
                recorded = json.loads(st.meta.read_text())
            except (OSError, ValueError):
                recorded = None
        st.plan = resume_plan(recorded, part_size, item.size, item.etag, chunk)
        if st.plan.fresh:  # the part file exists from here on, empty; it is opened by the first chunk's task
            os.close(os.open(st.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        if not st.plan.fresh:
            self.resumed.append(item.name)
        elif item.size >= RESUME_MIN:
            self._write_meta(st)
        else:
            st.meta.unlink(missing_ok=True)
        if len(st.ranges) == 1:
            st.md5 = hashlib.md5(usedforsecurity=False) if st.plan.offset == 0 else None
        already = st.plan.offset + sum(st.ranges[i][1] - st.ranges[i][0] for i in st.plan.done)
        self.progress.start_file(item.name, item.size)
        if already:
            self.progress.advance(already, item.name, item.size)
        return st

    def _write_meta(self, st: _State) -> None:
        doc = {"key": st.item.key, "etag": st.item.etag, "size": st.item.size, "chunk": st.chunk,
               "done": sorted(st.done)}
        tmp = st.meta.with_name(st.meta.name + ".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(st.meta)

    @staticmethod
    def _open(st: _State) -> int:
        """The part file's descriptor, opened by the first task that writes to it (a thousand small files do
        not hold a thousand descriptors while they wait their turn)."""
        with st.lock:
            if st.fd < 0:
                st.fd = os.open(st.part, os.O_RDWR | os.O_CREAT, 0o644)
                if len(st.ranges) == 1:
                    os.ftruncate(st.fd, st.plan.offset)  # a single-range resume continues from the offset
            return st.fd

    def _chunk(self, st: _State, index: int) -> None:
        start, end = st.ranges[index]
        if len(st.ranges) == 1:
            start = st.plan.offset
        pos = [start]
        item = st.item

        fd = self._open(st)

        def attempt() -> None:
            if pos[0] >= end:
                return
            whole = pos[0] == 0 and end == item.size
            extra = {} if whole else {"Range": f"bytes={pos[0]}-{end - 1}"}
            if item.etag:
                extra["IfMatch"] = f'"{item.etag}"'  # the object changed since we listed it: 412, not a mix
            client = self.small if item.size <= SMALL_OBJECT else self.client
            body = client.get_object(Bucket=self.bucket, Key=item.key, **extra)["Body"]
            try:
                while pos[0] < end:
                    if self.cancel.is_set():
                        raise Cancelled
                    data = body.read(min(READ_BLOCK, end - pos[0]))
                    if not data:
                        from botocore.exceptions import IncompleteReadError

                        raise IncompleteReadError(actual_bytes=pos[0] - start, expected_bytes=end - start)
                    os.pwrite(fd, data, pos[0])
                    if st.md5 is not None:
                        st.md5.update(data)
                    pos[0] += len(data)
                    self.progress.advance(len(data), item.name, item.size)
            finally:
                body.close()

        _retrying(f"downloading {item.name}", self.endpoint, self.cancel, attempt)
        with st.lock:
            st.done.add(index)
            st.remaining -= 1
            last = st.remaining == 0
            if len(st.ranges) > 1 and not last:
                self._write_meta(st)
        if last:
            self._finish(st)

    def _finish(self, st: _State) -> None:
        if self.cancel.is_set():
            raise Cancelled
        item = st.item
        with st.lock:
            if st.fd >= 0:
                os.close(st.fd)
                st.fd = -1
        actual = st.part.stat().st_size
        problem = None
        if actual != item.size:
            problem = f"size {actual} instead of {item.size}"
        elif is_single_part_etag(item.etag):
            digest = st.md5.hexdigest() if st.md5 is not None else _file_md5(st.part)
            if digest != item.etag:
                problem = "MD5 differs from the ETag"
        if problem:
            st.part.unlink(missing_ok=True)
            st.meta.unlink(missing_ok=True)
            raise MlctlError(f"{item.name}: the download does not match the object in S3 ({problem}); "
                             "the partial file was removed", hint="run the command again")
        os.replace(st.part, item.dest)
        st.meta.unlink(missing_ok=True)
        self.progress.file_done(item.name, item.size)


def _file_md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


# ---- uploads -------------------------------------------------------------------------------------------

@dataclass
class Upload:
    src: Path
    key: str  # absolute
    name: str  # shown: the path inside the run
    size: int


class Uploader(_Transfers):

    def run(self, items: list[Upload]) -> None:
        tasks = [(lambda it=it: self._large(it)) if it.size > self.threshold else (lambda it=it: self._small(it))
                 for it in items]
        _run_tasks(tasks, self.workers, self.cancel)

    def _small(self, item: Upload) -> None:
        def attempt() -> None:
            client = self.small if item.size <= SMALL_OBJECT else self.client
            with open(item.src, "rb") as body:
                client.put_object(Bucket=self.bucket, Key=item.key, Body=body)

        _retrying(f"uploading {item.name}", self.endpoint, self.cancel, attempt)
        self.progress.advance(item.size, item.name, item.size)
        self.progress.file_done(item.name, item.size)

    def _large(self, item: Upload) -> None:
        from boto3.s3.transfer import S3Transfer, TransferConfig

        config = TransferConfig(multipart_threshold=self.threshold, multipart_chunksize=self.chunk,
                                max_concurrency=8, num_download_attempts=TRIES, use_threads=True)
        self.progress.start_file(item.name, item.size)

        def callback(n: int) -> None:
            if self.cancel.is_set():
                raise Cancelled  # s3transfer aborts the multipart upload
            self.progress.advance(n, item.name, item.size)

        def attempt() -> None:
            from s3transfer.exceptions import S3UploadFailedError

            try:
                S3Transfer(self.client, config).upload_file(str(item.src), self.bucket, item.key, callback=callback)
            except S3UploadFailedError as e:
                if self.cancel.is_set():
                    raise Cancelled from None
                cause = e.__cause__ or e.__context__
                if isinstance(cause, Exception):
                    raise cause from None
                raise MlctlError(f"uploading {item.name} failed: {str(e).splitlines()[0]}") from None

        _retrying(f"uploading {item.name}", self.endpoint, self.cancel, attempt)
        self.progress.file_done(item.name, item.size)
