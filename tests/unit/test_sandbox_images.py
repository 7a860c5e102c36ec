"""The sandbox images' cache: where it is, what its hash covers, when a build is skipped."""

from __future__ import annotations

import subprocess

import pytest

from mlctl.sandbox import images
from mlctl.sandbox.procs import SandboxError


@pytest.fixture
def src(tmp_path, monkeypatch):
    """A sandbox/ source tree with one image, and a private cache."""
    root = tmp_path / "sandbox"
    image = root / "images" / "demo"
    image.mkdir(parents=True)
    (image / "requirements.txt").write_text("# nothing\n")
    (image / "demo.py").write_text("print('hello')\n")
    monkeypatch.setenv("MLCTL_SANDBOX_SRC", str(root))
    monkeypatch.setenv("MLCTL_CACHE_DIR", str(tmp_path / "cache"))
    return image


def test_cache_dir_follows_mlctl_cache_dir_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("MLCTL_CACHE_DIR", str(tmp_path / "c"))
    assert images.cache_dir() == tmp_path / "c" / "images"
    monkeypatch.delenv("MLCTL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert images.cache_dir() == tmp_path / "x" / "mlctl" / "images"


def test_hash_covers_content_and_names_but_not_bytecode(src):
    before = images.content_hash(src)
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "demo.cpython-311.pyc").write_bytes(b"\0")
    assert images.content_hash(src) == before
    (src / "demo.py").write_text("print('changed')\n")
    changed = images.content_hash(src)
    assert changed != before
    (src / "demo.py").rename(src / "other.py")
    assert images.content_hash(src) != changed


def test_unknown_image_is_an_error(src):
    with pytest.raises(SandboxError, match="no image 'nope'"):
        images.ensure("nope")


def test_a_finished_image_is_not_rebuilt(src, monkeypatch):
    target = images.home("demo")
    target.mkdir(parents=True)
    (target / images.MARKER).write_text("built\n")

    def no_build(*args, **kwargs):
        raise AssertionError("ensure ran a build for a finished image")

    monkeypatch.setattr(subprocess, "run", no_build)
    assert images.ensure("demo") == target / "venv" / "bin" / "python"


def test_build_makes_a_venv_and_copies_the_program(src):
    python = images.ensure("demo")
    assert subprocess.run([str(python), str(images.entrypoint("demo"))], capture_output=True, text=True,
                          check=True).stdout == "hello\n"
    assert (python.parents[2] / images.MARKER).is_file()


def test_a_failed_build_leaves_no_image(src):
    (src / "requirements.txt").write_text("--no-such-pip-option\n")
    with pytest.raises(SandboxError, match="pip install"):
        images.ensure("demo")
    assert not images.home("demo").exists()
