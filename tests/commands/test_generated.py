"""Completions and man pages are generated from the command tree; the committed files must be current,
and they must work in a real bash and a real man."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlctl import docgen
from tests.conftest import REPO, mlctl


def test_committed_files_equal_generated():
    for rel, content in docgen.generate().items():
        path = REPO / rel
        assert path.exists(), f"{rel} missing: run 'make generate'"
        assert path.read_text() == content, f"{rel} is stale: run 'make generate'"
    committed = {f"man/{p.name}" for p in (REPO / "man").glob("*.1")}
    assert committed <= set(docgen.generate()), "man/ holds pages of commands that no longer exist"


def test_completion_command_prints_committed_script(home):
    for shell in ("bash", "zsh", "fish"):
        r = mlctl("completion", shell)
        assert r.code == 0 and r.out == (REPO / f"completions/mlctl.{shell}").read_text()
    assert mlctl("completion", "tcsh").code == 2


def _bash_complete(line: str, env: dict) -> list[str]:
    """Complete line in a real bash that sourced the committed script; return COMPREPLY."""
    words = line.split(" ")
    script = f"""
source {REPO}/completions/mlctl.bash
COMP_WORDS=({' '.join(repr(w) if w else "''" for w in words)})
COMP_CWORD={len(words) - 1}
_mlctl_completion mlctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    bindir = str(Path(sys.executable).parent)
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                         env={**env, "PATH": bindir + os.pathsep + env.get("PATH", "")}, timeout=60)
    assert out.returncode == 0, out.stderr
    return [w for w in out.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_real_bash_completes_subcommand_option_and_cluster(platform):
    env = dict(os.environ)
    assert "clusters" in _bash_complete("mlctl clu", env)
    assert set(_bash_complete("mlctl clusters ", env)) >= {"list", "show"}
    assert "--output" in _bash_complete("mlctl clusters list --out", env)
    assert _bash_complete("mlctl clusters list -o ya", env) == ["yaml"]
    # dynamic: cluster names come from the configured platform document
    assert _bash_complete("mlctl clusters list --cluster ", env) == ["local", "gcp"]
    assert _bash_complete("mlctl clusters show g", env) == ["gcp"]


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_man_renders():
    out = subprocess.run(["man", "-l", str(REPO / "man/mlctl.1")], capture_output=True, text=True,
                         env={**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80"}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "mlctl" in out.stdout and "EXIT STATUS" in out.stdout and "clusters" in out.stdout
