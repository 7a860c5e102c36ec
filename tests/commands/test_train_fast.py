"""`mlctl train SPEC` has two parsers: submit.parse_fast (main.py calls it before loading click, to save the
command tree's start-up on the most frequent call) and the click command. Every case here runs through both
and must give the same exit code, stdout and stderr; the cases the fast parser must hand to click are
checked to be handed over, so a parser that took nothing (both runs through click) fails too."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from mlctl.commands.train.submit import parse_fast
from mlctl.io import IO
from mlctl.main import run
from tests.conftest import PLATFORM_DOC, REPO

SPEC = str(REPO / "examples" / "3dgan.yaml")
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")

# Read by the fast parser: (args after "mlctl", expected exit code)
FAST = [
    (["train", SPEC, "--dry-run", "client", "--cluster", "local"], 0),
    (["train", "--cluster", "gcp", SPEC, "--dry-run=client", "--set", "workers=2", "--set=resources.gpus=1"], 0),
    (["train", SPEC, "--dry-run", "client", "-n", "team-a", "--no-color", "-o", "json", "-y"], 0),
    (["train", SPEC, "--cluster", "gcp", "--dry-run", "client", "--cluster", "local"], 0),  # the last one wins
    (["train", SPEC, "--set", "resources.gpus=9", "--check", "--cluster", "local"], 6),
    (["train", SPEC, "--set", "nosuchfield=1", "--dry-run", "client"], 2),
    (["train", SPEC, "--cluster", "nowhere"], 4),
    (["train", "missing/spec.yaml", "--wait", "--timeout", "5"], 4),
    (["train", SPEC, "--follow"], 3),  # not logged in
    (["train", SPEC, "-f", "--dry-run", "server"], 3),
]
# Handed to click, which prints its own usage error or runs what the fast parser does not read
CLICK = [
    (["train", SPEC, "--timeout", "soon"], 2),
    (["train", "--wait", SPEC], 2),
    (["train", SPEC, "--dry-run", "maybe"], 2),
    (["train", SPEC, "--cluster"], 2),
    (["train", SPEC, "other.yaml"], 2),
    (["train", SPEC, "-o", "xml"], 2),
    (["train", SPEC, "--nosuch"], 2),
    (["train", SPEC, "-nteam-a", "--dry-run", "client"], 0),
    (["train", SPEC, "--help"], 0),
    (["train", "list"], 3),
    (["train", SPEC, "--set", "-x", "--dry-run", "client"], 2),
]


def _both(args: list[str], home) -> tuple[tuple, tuple]:
    env = {**os.environ}
    results = []
    for fast in (True, False):
        io = IO.test()
        code = run(list(args), io=io, env=env, fast=fast)
        results.append((code, RUN_ID.sub("RUN", io.stdout.getvalue()), io.stderr.getvalue()))
    return results[0], results[1]


@pytest.mark.parametrize(("args", "code"), FAST, ids=[" ".join(a[1:]).replace(SPEC, "SPEC") for a, _ in FAST])
def test_the_fast_parser_answers_as_click_does(platform, args, code):
    assert parse_fast(args[1:]) is not None
    fast, full = _both(args, platform)
    assert fast == full
    assert fast[0] == code, fast[2]
    if code == 0:
        assert "kind: TFJob" in fast[1]
    else:
        assert fast[2].startswith("error: ") and "Traceback" not in fast[2]


@pytest.mark.parametrize(("args", "code"), CLICK, ids=[" ".join(a[1:]).replace(SPEC, "SPEC") for a, _ in CLICK])
def test_what_the_fast_parser_does_not_read_goes_to_click(platform, args, code):
    assert parse_fast(args[1:]) is None
    fast, full = _both(args, platform)
    assert fast == full and fast[0] == code, fast


def test_options_read_by_the_fast_parser(platform):
    flags, opts = parse_fast([SPEC, "--set", "a=1", "--set=b=2", "--cluster", "gcp", "-f", "--timeout", "2.5",
                              "--dry-run=server", "-y"])
    assert flags == {"cluster": "gcp", "yes": True}
    assert (opts.spec, opts.sets, opts.follow, opts.wait, opts.timeout, opts.dry_run) == \
        (SPEC, ("a=1", "b=2"), True, False, 2.5, "server")


PROBE = """
import sys
from mlctl.main import run
code = run(sys.argv[2:], fast=sys.argv[1] == "fast")
print("\\nclick loaded:", "click" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def test_a_spec_on_stdin_and_a_platform_file_without_click(home, tmp_path):
    """`mlctl train - --platform FILE --dry-run client < spec`: read the same by both parsers; the fast one
    never loads click."""
    document = tmp_path / "platform.yaml"
    document.write_text(PLATFORM_DOC)
    args = ["train", "-", "--platform", str(document), "--dry-run", "client", "--cluster", "gcp"]
    with open(SPEC) as spec:
        text = spec.read()
    out = {}
    for mode in ("fast", "full"):
        done = subprocess.run([sys.executable, "-c", PROBE, mode, *args], input=text, capture_output=True,
                              text=True, timeout=60)
        out[mode] = (done.returncode, RUN_ID.sub("RUN", done.stdout), done.stderr)
    assert out["fast"][0] == out["full"][0] == 0, out
    assert out["fast"][1] == out["full"][1] and "namespace: u-user" in out["fast"][1]
    assert out["fast"][2].split()[-3:] == ["click", "loaded:", "False"]
    assert out["full"][2].split()[-3:] == ["click", "loaded:", "True"]
