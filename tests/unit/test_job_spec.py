"""load_spec: validation messages (file:line: field), --set, per-cluster overrides, and fuzzing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlctl.errors import QuotaExceeded, UsageError
from mlctl.jobs import check_fit, load_spec, render, schema
from mlctl.jobs.schema import validate

ROOT = Path(__file__).resolve().parents[2]
GAN = (ROOT / "examples" / "3dgan.yaml").read_text()
MNIST = (ROOT / "examples" / "mnist-pytorch.yaml").read_text()
CLUSTERS = yaml.safe_load((Path(__file__).parent / "golden" / "inputs" / "platform-clusters.yaml").read_text())

MINIMAL = """\
apiVersion: mlctl.io/v1alpha1
kind: TrainingJob
name: demo
framework: pytorch
image: registry.example.org/ml/demo:1
"""


def error_of(text: str, sets=(), cluster=None, filename="job.yaml") -> str:
    with pytest.raises(UsageError) as info:
        load_spec(text, filename, sets=sets, cluster=cluster)
    message = info.value.message
    assert "\n" not in message
    return message


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing needle (so tests don't hard-code line numbers)."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# ---- the examples and defaults -------------------------------------------------------------------------

def test_minimal_spec_gets_documented_defaults():
    spec = load_spec(MINIMAL, "job.yaml")
    assert (spec.workers, spec.resources.gpus, spec.resources.pool) == (1, 0, "cpu")
    assert (spec.resources.cpu, spec.resources.memory) == ("1", "4Gi")
    assert (spec.restart_policy, spec.backoff_limit, spec.ttl_seconds_after_finished) == ("ExitCode", 3, 86400)
    assert spec.active_deadline_seconds is None and spec.output is None and spec.simulate is None
    assert spec.replicas() == {"Master": 1}


def test_pool_defaults_to_gpu_when_gpus_requested():
    assert load_spec(MINIMAL + "resources: {gpus: 1}\n", "job.yaml").resources.pool == "gpu"


def test_3dgan_example_per_cluster():
    local = load_spec(GAN, "3dgan.yaml", cluster="local")
    gcp = load_spec(GAN, "3dgan.yaml", cluster="gcp")
    assert (local.workers, local.resources.gpus) == (4, 4)
    assert (gcp.workers, gcp.resources.gpus, gcp.resources.memory) == (16, 8, "200Gi")
    assert gcp.resources.pool == local.resources.pool == "gpu"  # merged, not replaced
    assert local.framework == "tensorflow" and local.replicas() == {"Chief": 1, "Worker": 3}
    assert gcp.replicas() == {"Chief": 1, "Worker": 15}
    assert local.output.url == "s3://ml-outputs/3dgan/" and local.output.secret == "mlctl-s3"
    assert local.simulate.run_seconds == 8
    assert local.data[0].host_path and gcp.data[0].pvc == "3dgan-showers"  # lists are replaced whole
    assert gcp.active_deadline_seconds == 21600 and local.active_deadline_seconds is None
    assert local.spec_hash != gcp.spec_hash


def test_unknown_cluster_or_none_uses_top_level():
    assert load_spec(GAN, "3dgan.yaml", cluster="elsewhere").workers == load_spec(GAN, "3dgan.yaml").workers == 4


def test_plain_scalars_stay_text_where_text_is_expected():
    spec = load_spec(MINIMAL + "env: {OMP_NUM_THREADS: 4, FLAG: yes, RATE: 0.10, on: x}\nargs: [--lr, 1e-3, 010]\n"
                     "resources: {cpu: 0.5}\n", "job.yaml")
    assert spec.env == {"OMP_NUM_THREADS": "4", "FLAG": "yes", "RATE": "0.10", "on": "x"}
    assert spec.args == ("--lr", "1e-3", "010")
    assert spec.resources.cpu == "0.5"


def test_output_shorthand_and_mapping_are_the_same():
    short = load_spec(MINIMAL + "output: s3://bucket/p/\n", "job.yaml")
    long = load_spec(MINIMAL + "output: {url: s3://bucket/p/, secret: mlctl-s3}\n", "job.yaml")
    assert short.output == long.output and short.spec_hash == long.spec_hash


def test_yaml_anchors_and_merge_keys_work():
    text = MINIMAL + "resources: &r {gpus: 2, memory: 8Gi}\nclusters:\n  gcp:\n    resources:\n      <<: *r\n      gpus: 4\n"
    spec = load_spec(text, "job.yaml", cluster="gcp")
    assert (spec.resources.gpus, spec.resources.memory) == (4, "8Gi")


# ---- validation messages -------------------------------------------------------------------------------

@pytest.mark.parametrize("old,new,field,words", [
    ("  gpus: 4", "  gpus: eight", "resources.gpus", 'must be an integer ≥ 0, got "eight"'),
    ("  gpus: 4", "  gpus: -1", "resources.gpus", "must be an integer ≥ 0, got -1"),
    ("  gpus: 4", "  gpus: true", "resources.gpus", "got true"),
    ("  gpus: 4", "  gpus: 2.5", "resources.gpus", "got 2.5"),
    ("workers: 4", "workers: 0", "workers", "must be an integer ≥ 1, got 0"),
    ("workers: 4", "workers: 123456789012345678901234567890", "workers", "must be an integer ≤ 4096"),
    ("framework: tensorflow", "framework: tensorflw", "framework", "did you mean tensorflow?"),
    ("name: gan3d", "name: 3dgan", "name", "starting with a letter"),
    ("name: gan3d", "name: Gan3d", "name", 'got "Gan3d"'),
    ("  memory: 64Gi", "  memory: 64gi", "resources.memory", 'got "64gi"'),
    ("  memory: 64Gi", "  memory: 64m", "resources.memory", "did you mean 64Mi?"),
    ("  memory: 64Gi", "  memory: 64", "resources.memory", "did you mean 64Gi?"),
    ("  cpu: 16", "  cpu: 0", "resources.cpu", "must be a positive CPU quantity"),
    ("  pool: gpu", "  pool: GPU_Pool", "resources.pool", "DNS-1123"),
    ("output: s3://ml-outputs/3dgan/", "output: /eos/out", "output", "S3 URL"),
    ("restartPolicy: ExitCode", "restartPolicy: Always", "restartPolicy", "one of ExitCode, OnFailure, Never"),
    ("ttlSecondsAfterFinished: 86400", "ttlSecondsAfterFinished: 1e99", "ttlSecondsAfterFinished", "integer"),
    ("    mountPath: /data/showers", "    mountPath: data", "data[0].mountPath", "absolute path"),
    ("  TF_CPP_MIN_LOG_LEVEL: 2", "  AWS_SECRET_ACCESS_KEY: hunter2", "env.AWS_SECRET_ACCESS_KEY", "Secret"),
    ("  TF_CPP_MIN_LOG_LEVEL: 2", "  TF_CPP_MIN_LOG_LEVEL: [2]", "env.TF_CPP_MIN_LOG_LEVEL", "a list"),
    ("  runSeconds: 8", "  runSeconds: 8\n  failReplica: Worker-3", "simulate.failReplica", "Worker-0..Worker-2"),
    ("  runSeconds: 8", "  exitCode: 300", "simulate.exitCode", "≤ 255"),
    ("    workers: 16", "    workers: many", "clusters.gcp.workers", 'got "many"'),
    ("    resources: {gpus: 8", "    resources: {gpus: -8", "clusters.gcp.resources.gpus", "≥ 0"),
])
def test_errors_name_file_line_and_field(old, new, field, words):
    assert old in GAN
    text = GAN.replace(old, new, 1)
    message = error_of(text, filename="3dgan.yaml")
    line = line_of(text, new.strip().splitlines()[-1])
    assert message.startswith(f"3dgan.yaml:{line}: {field}: "), message
    assert words in message


def test_the_briefs_example_message_exactly():
    text = GAN.replace("  gpus: 4", "  gpus: eight")
    assert error_of(text, filename="3dgan.yaml") == (
        f'3dgan.yaml:{line_of(text, "gpus: eight")}: resources.gpus: must be an integer ≥ 0, got "eight"')


@pytest.mark.parametrize("old,new,suggestion", [
    ("  gpus: 4", "  gpu: 4", "did you mean resources.gpus?"),
    ("  gpus: 4", "  GPUs: 4", "did you mean resources.gpus?"),
    ("workers: 4", "replicas: 4", "did you mean workers?"),
    ("workers: 4", "worker: 4", "did you mean workers?"),
    ("restartPolicy: ExitCode", "restart_policy: ExitCode", "did you mean restartPolicy?"),
    ("workers: 4", "workers: 4\ngpus: 2", "did you mean resources.gpus?"),
    ("    workers: 16", "    wrkers: 16", "did you mean clusters.gcp.workers?"),
    ("    mountPath: /data/showers", "    mountpath: /data/showers", "did you mean data[0].mountPath?"),
])
def test_unknown_fields_suggest_the_nearest_valid_one(old, new, suggestion):
    text = GAN.replace(old, new, 1)
    message = error_of(text, filename="3dgan.yaml")
    key = new.strip().splitlines()[-1].split(":")[0]
    assert f":{line_of(text, new.strip().splitlines()[-1])}: " in message
    assert f"{key}: unknown field" in message and suggestion in message, message


def test_unknown_field_without_a_near_match_lists_valid_ones():
    message = error_of(MINIMAL + "resources: {zzzzzz: 1}\n")
    assert "valid fields: cpu, gpus, memory, pool" in message


def test_missing_required_field():
    message = error_of(MINIMAL.replace("image: registry.example.org/ml/demo:1\n", ""))
    assert message.startswith("job.yaml:1: image: required field is missing")


def test_data_mount_needs_exactly_one_source_and_is_read_only():
    base = MINIMAL + "data:\n  - name: d\n    mountPath: /d\n"
    assert "exactly one of hostPath and pvc" in error_of(base)
    assert "got both" in error_of(base + "    pvc: c\n    hostPath: /x\n")
    assert "data[0].readOnly: must be exactly true" in error_of(base + "    pvc: c\n    readOnly: false\n")
    assert load_spec(base + "    pvc: c\n    readOnly: true\n", "j.yaml").data[0].pvc == "c"
    dup = base + "    pvc: c\n  - {name: d, pvc: e, mountPath: /e}\n"
    assert "data[1].name: d is already data[0]" in error_of(dup)


@pytest.mark.parametrize("text,words", [
    ("", "empty"),
    ("# only a comment\n", "empty"),
    ("- a\n- b\n", "must be a mapping of fields"),
    ("just text", 'got "just text"'),
    ("a: [", "not valid YAML"),
    ("a: b\n  c: d\n", "not valid YAML"),
    ("\x00\x01\x02", "not valid YAML"),
    ("a: 1\n---\nb: 2\n", "not valid YAML"),
    ("name: a\nname: b\n", "name: duplicate key"),
    ("a: &a [*a]\n", "too deeply"),
    ("[" * 5000, "nested"),
    ("workers: " + "9" * 5000, "too long"),
    ("when: 2001-13-45\n", "YAML value"),
    ("? [a, b]\n: c\n", "keys must be plain names"),
    ("x: !!python/object:os.system {}\n", "not valid YAML"),
    ("lol: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n", "too large"),
], ids=lambda v: repr(v)[:24])
def test_malformed_input_is_a_usage_error(text, words):
    message = error_of(text)
    assert message.startswith("job.yaml")
    assert words in message, message


def test_bytes_that_are_not_utf8():
    with pytest.raises(UsageError, match="not UTF-8"):
        load_spec(b"\xff\xfe\x00garbage", "job.yaml")


# ---- --set ---------------------------------------------------------------------------------------------

def test_set_overrides_fields_and_parses_yaml_scalars():
    spec = load_spec(GAN, "3dgan.yaml", sets=["resources.gpus=2", "workers=3", "env.FOO=bar", "env.N=1",
                                              "args=[--epochs, 5]", "output.secret=my-s3",
                                              "activeDeadlineSeconds=600"])
    assert (spec.resources.gpus, spec.workers) == (2, 3)
    assert spec.env["FOO"] == "bar" and spec.env["N"] == "1" and spec.env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert spec.args == ("--epochs", "5")
    assert spec.output.secret == "my-s3" and spec.output.url == "s3://ml-outputs/3dgan/"
    assert spec.active_deadline_seconds == 600


def test_set_beats_the_cluster_override_but_can_edit_it():
    assert load_spec(GAN, "3dgan.yaml", sets=["workers=2"], cluster="gcp").workers == 2
    assert load_spec(GAN, "3dgan.yaml", sets=["clusters.gcp.workers=8"], cluster="gcp").workers == 8
    assert load_spec(GAN, "3dgan.yaml", sets=["clusters.gcp.workers=8"], cluster="local").workers == 4
    new = load_spec(MINIMAL, "j.yaml", sets=["clusters.gcp.resources.gpus=2"], cluster="gcp")
    assert new.resources.gpus == 2 and new.resources.pool == "gpu"


def test_set_env_keys_may_contain_dots_and_create_missing_mappings():
    spec = load_spec(MINIMAL, "j.yaml", sets=["env.a.b=c", "simulate.runSeconds=3", "output=s3://bkt/x/"])
    assert spec.env == {"a.b": "c"} and spec.simulate.run_seconds == 3 and spec.output.url == "s3://bkt/x/"


@pytest.mark.parametrize("assignment,words", [
    ("resources.gpus=eight", '--set resources.gpus: must be an integer ≥ 0, got "eight"'),
    ("resources.gpu=1", "--set resources.gpu: unknown field, did you mean resources.gpus?"),
    ("gpus=1", "--set gpus: unknown field, did you mean resources.gpus?"),
    ("replicas=3", "did you mean workers?"),
    ("clusters.gcp.wrkers=3", "did you mean clusters.gcp.workers?"),
    ("clusters.GCP.workers=3", "--set clusters.GCP: bad name"),
    ("env.1X=1", "--set env.1X: bad name"),
    ("workers", "expected key=value"),
    ("=4", "expected a field path"),
    ("resources..gpus=1", "empty field name"),
    ("data.0.name=x", "data is a list"),
    ("workers.count=3", "not a mapping"),
    ("command=python", "write a list: --set 'command=[python]'"),
    ("workers=[1", "not valid YAML"),
    ("env.AWS_ACCESS_KEY_ID=AKIA", "--set env.AWS_ACCESS_KEY_ID: set by mlctl"),
    ("simulate.failReplica=Worker-9", "--set simulate.failReplica: no replica Worker-9"),
    ("output.secret=x", None),
])
def test_set_errors(assignment, words):
    if words is None:  # output.secret alone, without an output URL anywhere
        assert "output: needs url" in error_of(MINIMAL, sets=[assignment])
        return
    message = error_of(GAN, sets=[assignment])
    assert words in message, message


def test_set_errors_are_reported_after_file_errors():
    bad = GAN.replace("  gpus: 4", "  gpus: eight")
    assert error_of(bad, sets=["workers=x"], filename="3dgan.yaml").startswith("3dgan.yaml:")


def test_errors_in_merged_values_point_at_the_override_line():
    text = GAN.replace("  runSeconds: 8", "  runSeconds: 8\n  failReplica: Worker-5")
    assert load_spec(text, "3dgan.yaml", cluster="gcp").simulate.fail_replica == "Worker-5"
    assert "simulate.failReplica: no replica Worker-5" in error_of(text, cluster="local")
    override = GAN.replace("    workers: 16", "    workers: 16\n    env: {AWS_ACCESS_KEY_ID: x}")
    message = error_of(override, cluster="gcp", filename="3dgan.yaml")
    assert message.startswith(f"3dgan.yaml:{line_of(override, 'AWS_ACCESS_KEY_ID')}: "
                              "clusters.gcp.env.AWS_ACCESS_KEY_ID: ")


# ---- the schema ----------------------------------------------------------------------------------------

def test_schema_is_json_and_a_copy():
    published = schema()
    json.dumps(published)
    assert published["properties"]["apiVersion"]["const"] == "mlctl.io/v1alpha1"
    published["properties"].clear()
    assert schema()["properties"]


def test_examples_validate_against_the_published_schema_as_plain_data():
    for text in (GAN, MNIST):
        validate(yaml.safe_load(text), schema())


# ---- fuzzing: nothing but UsageError, ever -------------------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                     st.sampled_from(["8", "eight", "16Gi", "500m", "s3://b-1/x", "/eos", "Worker-1", "gpu",
                                      "tensorflow", "pytorch", "ExitCode", "", "~", "1e999", "-1"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                       max_leaves=12)
_fields = st.sampled_from(["name", "framework", "image", "command", "args", "env", "workers", "resources",
                           "resources.gpus", "resources.cpu", "resources.memory", "resources.pool", "data",
                           "output", "output.url", "output.secret", "restartPolicy", "backoffLimit",
                           "ttlSecondsAfterFinished", "activeDeadlineSeconds", "clusters", "clusters.gcp",
                           "clusters.gcp.workers", "clusters.gcp.resources", "simulate", "simulate.exitCode",
                           "simulate.failReplica", "apiVersion", "kind", "bogus", "env.FOO", "data.0"])


def _mutate(doc, dotted, value):
    target = doc
    keys = dotted.split(".")
    for key in keys[:-1]:
        if isinstance(target, list):
            if not target:
                return
            target = target[0]
            continue
        if not isinstance(target.get(key), dict | list):
            target[key] = {}
        target = target[key]
    if isinstance(target, dict):
        target[keys[-1]] = value


def _must_be_usage_error_or_spec(text, sets=(), cluster=None):
    try:
        spec = load_spec(text, "fuzz.yaml", sets=sets, cluster=cluster)
    except UsageError as e:
        assert e.message and "\n" not in e.message
        assert re.match(r"^(fuzz\.yaml|--set )", e.message), e.message
        return None
    return spec


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text(text):
    _must_be_usage_error_or_spec(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_fuzz_arbitrary_yaml_documents(value):
    _must_be_usage_error_or_spec(yaml.safe_dump(value))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_fields, _values), min_size=1, max_size=3),
       st.lists(st.tuples(_fields, st.text(max_size=15)), max_size=2),
       st.sampled_from([None, "gcp", "local"]))
def test_fuzz_mutated_specs_and_sets(mutations, sets, cluster):
    doc = yaml.safe_load(GAN)
    for dotted, value in mutations:
        _mutate(doc, dotted, value)
    spec = _must_be_usage_error_or_spec(yaml.safe_dump(doc), [f"{k}={v}" for k, v in sets], cluster)
    if spec is None:
        return
    for entry in CLUSTERS:  # whatever validates must render and be checked without a traceback
        try:
            objects = render(spec, entry, user="fuzz", namespace="u-fuzz")
            yaml.safe_dump(objects)
            check_fit(spec, entry, {"hard": {"requests.nvidia.com/gpu": "8", "requests.cpu": "64"}, "used": {}})
        except (UsageError, QuotaExceeded) as e:
            assert e.message and "\n" not in e.message


def test_identity_fields_cannot_differ_per_cluster():
    text = GAN.replace("    workers: 16", "    workers: 16\n    name: other")
    assert "clusters.gcp.name: cannot differ per cluster" in error_of(text)
    assert "--set clusters.gcp.framework: cannot differ per cluster" in error_of(GAN, sets=["clusters.gcp.framework=x"])
