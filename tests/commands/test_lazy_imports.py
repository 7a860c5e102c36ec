"""Start-up stays fast: the root and --help import no heavy library (checked by import, not by timing)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("kubernetes", "keycloak", "boto3", "botocore", "gssapi", "requests", "rich.table", "urllib3")

PROBE = """
import sys
from mlctl.main import run
from mlctl.io import IO
io = IO.test()
code = run({args!r}, io=io)
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {roots!r} or m == 'rich.table')
print(code, ','.join(heavy))
"""


def _imported(args: list[str]) -> tuple[int, list[str]]:
    roots = tuple(h.split(".")[0] for h in HEAVY if "." not in h)
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args, roots=roots)],
                         capture_output=True, text=True, check=True, timeout=60)
    code, _, mods = out.stdout.strip().partition(" ")
    return int(code), [m for m in mods.split(",") if m]


def test_help_imports_nothing_heavy():
    code, mods = _imported(["--help"])
    assert code == 0 and mods == []


def test_version_and_noun_help_import_nothing_heavy():
    for args in (["--version"], ["clusters", "--help"], ["sandbox", "--help"], ["version"]):
        code, mods = _imported(args)
        assert code == 0 and mods == [], (args, mods)


def test_the_probe_can_see_heavy_imports():
    """Guard against a probe that cannot fail: importing kubernetes must show up."""
    out = subprocess.run([sys.executable, "-c", "import sys, kubernetes; print('kubernetes' in sys.modules)"],
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "True"


def test_cached_token_imports_nothing_heavy(platform):
    """`mlctl token` runs on every kubectl call: with a fresh cached token it must not load any client."""
    import json
    import time

    cache = platform / "cache" / "mlctl" / "tokens" / "lab"
    cache.mkdir(parents=True)
    (cache / "cluster-local.json").write_text(json.dumps({"token": "t0k3n", "expires_at": time.time() + 600}))
    code, mods = _imported(["token", "--cluster", "local"])
    assert code == 0 and mods == []
    out = subprocess.run([sys.executable, "-c", "from mlctl.main import main; main()", "token", "--cluster", "local"],
                         capture_output=True, text=True, timeout=60)
    cred = json.loads(out.stdout)
    assert cred["kind"] == "ExecCredential" and cred["status"]["token"] == "t0k3n"


def test_everyday_commands_do_not_import_the_kubernetes_package(platform):
    """train list/status/logs and quota show go through mlctl's own Kubernetes layer. No API server listens at
    the platform's address, so each ends with exit 7 after its first request: what it imported by then is
    what a real run imports before its first request, plus the transport."""
    import json
    import time

    cache = platform / "cache" / "mlctl" / "tokens" / "lab"
    cache.mkdir(parents=True)
    (cache / "cluster-local.json").write_text(json.dumps({"token": "t0k3n", "expires_at": time.time() + 600}))
    (cache / "session.json").write_text(json.dumps({"user": "bob", "refresh_token": "r", "groups": []}))
    for args in (["train", "list"], ["train", "status", "gan3d"], ["train", "logs", "gan3d"],
                 ["quota", "show"], ["train", "events", "gan3d"]):
        code, mods = _imported([*args, "--cluster", "local"])
        assert code == 7, (args, code)
        assert [m for m in mods if m.split(".")[0] in ("kubernetes", "urllib3", "requests", "keycloak")] == [], \
            (args, mods)


# main() as it runs, but reporting whether click was loaded before the process ends (main's _exit)
FAST_PROBE = """
import sys
from mlctl import main
code = main._fast(sys.argv[1:])
code = main.run(sys.argv[1:]) if code is None else code
print("\\n" + str(code), "click" in sys.modules, file=sys.stderr)
"""


def test_the_exec_plugin_fast_path_answers_as_the_command_does_without_the_command_tree(platform):
    """kubectl's call (`token --cluster C --platform P`) with a fresh cached token is answered before click or
    the command tree load; its output and exit code are those of the full command."""
    import json
    import time

    cache = platform / "cache" / "mlctl" / "tokens" / "lab"
    cache.mkdir(parents=True)
    (cache / "cluster-local.json").write_text(json.dumps({"token": "t0k3n", "expires_at": time.time() + 600}))
    fast = subprocess.run([sys.executable, "-c", FAST_PROBE, "token", "--cluster", "local", "--platform", "lab"],
                          capture_output=True, text=True, timeout=60)
    assert fast.stderr.split() == ["0", "False"], fast.stderr  # exit 0, click never imported
    full = subprocess.run([sys.executable, "-c", "from mlctl.main import run; import sys; "
                           "sys.exit(run(['token', '--cluster', 'local', '--platform', 'lab']))"],
                          capture_output=True, text=True, timeout=60)
    assert full.returncode == 0 and fast.stdout == full.stdout
    assert json.loads(fast.stdout)["status"]["token"] == "t0k3n"
    # an expired token, or a flag the fast path does not know, takes the full path (click is loaded)
    (cache / "cluster-local.json").write_text(json.dumps({"token": "old", "expires_at": time.time() - 5}))
    slow = subprocess.run([sys.executable, "-c", FAST_PROBE, "token", "--cluster", "local", "--platform", "lab"],
                          capture_output=True, text=True, timeout=60)
    assert slow.stderr.split()[-1] == "True" and "t0k3n" not in slow.stdout
    version = subprocess.run([sys.executable, "-c", FAST_PROBE, "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.stdout.strip() == "mlctl 0.1.0" and version.stderr.split() == ["0", "False"]


def test_root_help_fast_path_prints_what_click_prints_at_that_width():
    """`mlctl --help` is answered from docgen's renderings without click, at the widths it has them for
    (piped: 80 columns; a terminal of 100 or more); any other width takes the full path. Both print the same."""
    import os

    for columns, fast_expected in (("80", True), ("132", True), ("100", True), ("64", False)):
        env = {**os.environ, "COLUMNS": columns}
        fast = subprocess.run([sys.executable, "-c", FAST_PROBE, "--help"], capture_output=True, text=True,
                              timeout=60, env=env)
        full = subprocess.run([sys.executable, "-c", "from mlctl.main import run; import sys; sys.exit(run(['--help']))"],
                              capture_output=True, text=True, timeout=60, env=env)
        assert full.returncode == 0 and "Usage: mlctl" in full.stdout
        assert fast.stdout == full.stdout, columns
        assert fast.stderr.split() == ["0", "False" if fast_expected else "True"], (columns, fast.stderr)


def test_a_submission_loads_no_click_dataclasses_or_logging(platform):
    """`mlctl train SPEC`, the most frequent call that reaches a server, is parsed without click, and the
    modules it loads use NamedTuples and plain classes (docs/cli.md). Here it ends with exit 7 (the test
    platform names no policy server) after the spec, the quota module and the kube layer were loaded."""
    import json
    import time

    cache = platform / "cache" / "mlctl" / "tokens" / "lab"
    cache.mkdir(parents=True)
    (cache / "cluster-local.json").write_text(json.dumps({"token": "t0k3n", "expires_at": time.time() + 600}))
    (cache / "session.json").write_text(json.dumps({"user": "bob", "refresh_token": "r", "groups": []}))
    probe = ("import sys\nfrom mlctl.main import run\ncode = run(sys.argv[1:])\n"
             "print(code, sorted(m for m in ('click', 'dataclasses', 'inspect', 'logging') if m in sys.modules),"
             " 'mlctl.jobs.check' in sys.modules, 'mlctl.kube.api' in sys.modules)")
    spec = str(REPO / "examples" / "3dgan.yaml")
    for args in (["train", spec, "--cluster", "local"], ["train", spec, "--dry-run", "client"]):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60)
        line = out.stdout.strip().splitlines()[-1]
        assert line in ("7 [] True True", "0 [] True False"), (args, line, out.stderr)
