"""The command frame through the real entry point: output modes, errors, exit codes, config precedence."""

from __future__ import annotations

import json

import yaml

from tests.conftest import mlctl


def test_version_flag_and_command(home):
    assert mlctl("--version").out.strip() == "mlctl 0.1.0"
    r = mlctl("version", "-o", "json")
    assert r.code == 0 and json.loads(r.out)["mlctl"] == "0.1.0"


def test_help_lists_commands_without_error(home):
    r = mlctl("--help")
    assert r.code == 0
    for name in ("clusters", "completion", "sandbox", "version"):
        assert f"  {name}" in r.out


def test_unknown_command_is_usage_error_with_suggestion(home):
    r = mlctl("clusters", "lst")
    assert r.code == 2
    assert r.err.splitlines()[0].startswith("error: ")
    assert "did you mean list" in r.err
    assert "Traceback" not in r.err


def test_bad_output_flag_is_usage_error(platform):
    r = mlctl("clusters", "list", "-o", "xml")
    assert r.code == 2 and "Invalid value for '-o'" in r.err


def test_no_platform_is_not_found_with_hint(home):
    r = mlctl("clusters", "list")
    assert r.code == 4
    assert r.err == ("error: no platform is configured\n"
                     "hint: run 'mlctl login --platform URL|FILE' or 'mlctl sandbox up'\n")
    assert r.out == ""


def test_table_piped_is_plain_columns(platform):
    r = mlctl("clusters", "list")
    assert r.code == 0
    lines = r.out.splitlines()
    # not logged in: the policy's decision and the free GPUs are unknown, and the table says why
    assert lines[0].split() == ["NAME", "PROVIDER", "ACCESS", "FREE-GPUS", "GPU-HOUR", "REASON"]
    assert lines[1].split() == ["local", "*", "on-prem", "unknown", "unknown", "0.00", "not", "logged", "in"]
    assert lines[2].split()[:5] == ["gcp", "gcp", "unknown", "unknown", "2.48"]
    assert "\x1b[" not in r.out


def test_table_on_tty_uses_rich_and_colour_unless_no_color(platform, monkeypatch):
    r = mlctl("clusters", "list", tty=True)
    assert r.code == 0 and "\x1b[" in r.out and "local" in r.out
    assert "\x1b[" not in mlctl("clusters", "list", "--no-color", tty=True).out
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in mlctl("clusters", "list", tty=True).out


def test_wide_adds_columns(platform):
    header = mlctl("clusters", "list", "-o", "wide").out.splitlines()[0].split()
    assert header[-2:] == ["SERVER", "AUDIENCE"]


def test_json_yaml_name_are_complete(platform):
    items = json.loads(mlctl("clusters", "list", "-o", "json").out)
    assert [c["name"] for c in items] == ["local", "gcp"]
    assert items[1]["pools"]["gpu"]["nodes"] == 128
    assert items[1]["access"] == {"default": False, "allowed": None, "reason": "not logged in",
                                  "decisionId": None, "freeGpus": None}
    assert yaml.safe_load(mlctl("clusters", "list", "-o", "yaml").out) == items
    assert mlctl("clusters", "list", "-o", "name").out == "cluster/local\ncluster/gcp\n"


def test_show_and_not_found(platform):
    r = mlctl("clusters", "show", "gcp")
    assert r.code == 0 and "preemptible" in r.out
    r = mlctl("clusters", "show", "aws")
    assert r.code == 4
    assert "cluster 'aws' is not in platform lab" in r.err and "known clusters: local, gcp" in r.err


def test_precedence_flag_over_env_over_file(platform, monkeypatch):
    config = platform / "config" / "mlctl" / "config.yaml"
    config.write_text("platform: lab\noutput: name\ncluster: local\n")
    assert mlctl("clusters", "list").out.startswith("cluster/")           # file
    monkeypatch.setenv("MLCTL_OUTPUT", "json")
    assert mlctl("clusters", "list").out.startswith("[")                  # env beats file
    assert mlctl("clusters", "list", "-o", "yaml").out.startswith("- ")   # flag beats env
    assert mlctl("-o", "yaml", "clusters", "list").out.startswith("- ")   # before the noun too
    # the inner (later) flag wins over the outer one, as in kubectl
    assert mlctl("-o", "json", "clusters", "list", "-o", "name").out.startswith("cluster/")
    monkeypatch.setenv("MLCTL_CLUSTER", "gcp")
    assert "gcp" in mlctl("clusters", "show", "-o", "name").out
    assert "local" in mlctl("clusters", "show", "--cluster", "local", "-o", "name").out


def test_bad_env_output_names_its_source(platform, monkeypatch):
    monkeypatch.setenv("MLCTL_OUTPUT", "xml")
    r = mlctl("clusters", "list")
    assert r.code == 2 and "unknown output format 'xml' (from MLCTL_OUTPUT)" in r.err


def test_broken_config_file_is_one_line_usage_error(platform):
    (platform / "config" / "mlctl" / "config.yaml").write_text("platform: [lab\n")
    r = mlctl("clusters", "list")
    assert r.code == 2 and r.err.startswith("error: ") and "not valid YAML" in r.err
    assert "Traceback" not in r.err


def test_broken_platform_document(platform):
    (platform / "config" / "mlctl" / "platforms" / "lab.yaml").write_text("kind: Nope\n")
    r = mlctl("clusters", "list")
    assert r.code == 2 and "not a platform document" in r.err


def test_debug_adds_traceback_and_still_redacts(platform):
    doc = platform / "config" / "mlctl" / "platforms" / "lab.yaml"
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
    doc.write_text(f"kind: Platform\nname: {jwt}\nclusters: 3\n")
    r = mlctl("clusters", "list")
    assert r.code == 2 and "Traceback" not in r.err
    r = mlctl("--debug", "clusters", "list")
    assert r.code == 2 and "Traceback" in r.err and jwt not in r.err + r.out


def test_empty_list_note_on_stderr_exit_0(home, monkeypatch):
    import mlctl.commands.clusters.list as cl
    from mlctl.factory import Factory
    from mlctl.io import IO

    io = IO.test()
    f = Factory(io)
    f.__dict__["platform"] = type("P", (), {"clusters": []})()
    cl.run(f, cl.Options(output="table"))
    assert io.stdout.getvalue() == "" and "No clusters" in io.stderr.getvalue()
    io = IO.test()
    f = Factory(io)
    f.__dict__["platform"] = type("P", (), {"clusters": []})()
    cl.run(f, cl.Options(output="json"))
    assert io.stdout.getvalue().strip() == "[]"


def test_confirm_refuses_without_tty_and_yes(home):
    import pytest

    from mlctl.errors import UsageError
    from mlctl.io import IO

    with pytest.raises(UsageError, match="refusing without confirmation"):
        IO.test().confirm("delete job x?", yes=False)
    IO.test().confirm("delete job x?", yes=True)
    tty = IO.test("y\n", tty=True)
    tty.confirm("delete job x?", yes=False)
    assert "[y/N]" in tty.stderr.getvalue()


def test_lazy_table_summaries_match_the_commands():
    """The root's --help reads summaries from the table; they must say what the command's help says."""
    import click

    from mlctl.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name, (_, summary) in COMMANDS.items():
        cmd = cli.get_command(ctx, name)
        assert cmd.get_short_help_str(500) == summary, name
