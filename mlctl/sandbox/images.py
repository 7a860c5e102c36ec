"""The sandbox's own images: small programs under the sandbox's assets, images/<name>/ that pods of the sandbox run as
local processes, each with a venv of its own.

An image is its directory: the program files and a requirements.txt with every package pinned. It is
built once per content hash (the files, and the Python version the venv is made with) into
${MLCTL_CACHE_DIR:-$XDG_CACHE_HOME/mlctl}/images/<name>-<hash>/ (default ~/.cache/mlctl/images/...):

    venv/          python -m venv, then pip install -r requirements.txt; the image's top-level *.pth files
                   go into its site-packages (e.g. one that lets the image import the installed mlctl)
    app/           a copy of the image's files, so a run does not depend on the work tree
    .mlctl-image   written last: a directory without it is an unfinished build and is rebuilt

Changing any file of an image makes a new hash, hence a new directory; old ones are left for `rm`.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mlctl.sandbox.procs import SandboxError, file_lock

MARKER = ".mlctl-image"
_SKIP = {"__pycache__", ".pytest_cache"}


def cache_dir() -> Path:
    """Where built images go (the build cache's images/ beside bin/)."""
    from mlctl.sandbox.build import cache_root

    return cache_root() / "images"


def source(name: str) -> Path:
    """The image's directory in the sandbox's assets."""
    from mlctl.sandbox import core

    folder = core.source_dir() / "images" / name
    if not (folder / "requirements.txt").is_file():
        raise SandboxError(f"no image {name!r}: {folder}/requirements.txt not found")
    return folder


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not _SKIP.intersection(p.relative_to(folder).parts) and p.suffix != ".pyc")


def content_hash(folder: Path) -> str:
    """12 hex digits over the image's files (names and bytes) and the Python version of the venv (the
    one running mlctl)."""
    h = hashlib.sha256("{}.{}".format(*sys.version_info[:2]).encode() + b"\0")
    for path in _files(folder):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:12]


def home(name: str) -> Path:
    """The cache directory of the image as it is now in the repository (it may not be built yet)."""
    return cache_dir() / f"{name}-{content_hash(source(name))}"


def _run(argv: list[str], out, what: str, log: Path | None) -> None:
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        where = f" (see {log})" if log else ""
        raise SandboxError(f"building the image failed: {what} exited {result.returncode}{where}")


def ensure(name: str, log: Path | None = None) -> Path:
    """Build image name once (cached by content hash); return the venv's python.

    The image's program is under app/ next to the venv: see entrypoint().
    """
    folder = source(name)
    target = cache_dir() / f"{name}-{content_hash(folder)}"
    python = target / "venv" / "bin" / "python"
    if (target / MARKER).is_file():
        return python
    with file_lock(cache_dir() / f"{target.name}.lock"):
        if (target / MARKER).is_file():
            return python
        began = time.monotonic()
        # The venv is made where it will live (a venv's scripts name their own path); the marker, written
        # last, is what makes the directory a finished image.
        if target.exists():
            shutil.rmtree(target)
        try:
            with contextlib.ExitStack() as stack:
                out = stack.enter_context(open(log, "ab")) if log else subprocess.DEVNULL
                _run([sys.executable, "-m", "venv", str(target / "venv")], out, "python -m venv", log)
                _run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
                      "-r", str(folder / "requirements.txt")], out, "pip install -r requirements.txt", log)
            site = target / "venv" / "lib" / "python{}.{}".format(*sys.version_info[:2]) / "site-packages"
            for pth in sorted(folder.glob("*.pth")):
                shutil.copy2(pth, site / pth.name)
            for path in _files(folder):
                dest = target / "app" / path.relative_to(folder)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
            (target / MARKER).write_text(f"built in {time.monotonic() - began:.1f} s\n")
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return python


def entrypoint(name: str, program: str | None = None) -> Path:
    """The cached copy of the image's program (default: the only top-level .py file, e.g. trainer.py)."""
    python = ensure(name)
    app = python.parents[2] / "app"
    if program:
        return app / program
    candidates = sorted(p for p in app.glob("*.py"))
    if len(candidates) != 1:
        raise SandboxError(f"image {name} has {len(candidates)} top-level programs; name one")
    return candidates[0]
