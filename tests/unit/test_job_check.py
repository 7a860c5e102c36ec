"""check_fit (capacity and quota, with numbers) and the Kubernetes quantity parser."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mlctl.errors import QuotaExceeded, UsageError
from mlctl.jobs import check_fit, format_quantity, load_spec, parse_quantity, totals
from mlctl.jobs.quantity import QuantityError

HERE = Path(__file__).parent
GAN = (HERE.parents[1] / "examples" / "3dgan.yaml").read_text()
CLUSTERS = {c["name"]: c for c in yaml.safe_load((HERE / "golden" / "inputs" / "platform-clusters.yaml").read_text())}


def gan(cluster="local", *sets):
    return load_spec(GAN, "3dgan.yaml", sets=list(sets), cluster=cluster)


def refusal(spec, cluster="local", quota=None) -> str:
    with pytest.raises(QuotaExceeded) as info:
        check_fit(spec, CLUSTERS[cluster], quota)
    assert info.value.exit_code == 6 and info.value.hint
    return info.value.message


# ---- quantities ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("500m", Decimal("0.5")), ("1", 1), ("1.5", Decimal("1.5")), ("16Gi", 16 * 2**30), ("512Mi", 512 * 2**20),
    ("1Ki", 1024), ("2k", 2000), ("3M", 3_000_000), ("1G", 10**9), ("1e3", 1000), ("1E3", 1000),
    ("1E", 10**18), ("100u", Decimal("0.0001")), ("5n", Decimal("5e-9")), ("-2", -2), ("+2", 2),
    (".5", Decimal("0.5")), ("2.", 2), (" 4 ", 4), (8, 8), (0.25, Decimal("0.25")), ("1.5Gi", 3 * 2**29),
])
def test_parse_quantity(text, value):
    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "Gi", "16gi", "16 Gi", "1.2.3", "0x10", "1e", "1e1000", "abc", "16GiB",
                                  "9" * 30, True, None, float("inf"), float("nan"), "1Ki1"])
def test_parse_quantity_rejects(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize("value,kind,text", [
    (Decimal(16 * 2**30), "memory", "16Gi"), (Decimal(2**20 * 3), "memory", "3Mi"), (Decimal(1000), "memory", "1000"),
    (Decimal("0.5"), "cpu", "500m"), (Decimal("26.5"), "cpu", "26.5"), (Decimal(4), "cpu", "4"), (Decimal(8), "", "8"),
])
def test_format_quantity(value, kind, text):
    assert format_quantity(value, kind) == text


@given(st.integers(min_value=1, max_value=2**30), st.sampled_from(["Ki", "Mi", "Gi", "", "k", "M", "G"]))
def test_format_then_parse_round_trips_memory(number, suffix):
    value = parse_quantity(f"{number}{suffix}")
    assert parse_quantity(format_quantity(value, "memory")) == value


# ---- capacity ------------------------------------------------------------------------------------------

def test_examples_fit_their_clusters():
    assert check_fit(gan("local"), CLUSTERS["local"]) == []
    warnings = check_fit(gan("gcp"), CLUSTERS["gcp"])
    assert warnings == []  # the gcp override sets activeDeadlineSeconds and restartPolicy is ExitCode


def test_totals():
    t = totals(gan("gcp"), CLUSTERS["gcp"])
    assert (t.pods, t.gpus, t.cpu, t.memory, t.gpu_resource) == (16, 128, 512, 16 * 200 * 2**30, "nvidia.com/gpu")


def test_more_gpus_per_worker_than_a_node_has():
    assert refusal(gan("local", "resources.gpus=9")) == \
        "9 GPUs per worker but nodes in pool gpu of cluster local have 4"


def test_more_cpu_or_memory_per_worker_than_a_node_has():
    assert refusal(gan("local", "resources.cpu=48")) == "48 CPUs per worker but nodes in pool gpu of cluster local have 32"
    assert refusal(gan("gcp", "resources.memory=1Ti"), "gcp") == \
        "1Ti of memory per worker but nodes in pool gpu of cluster gcp have 624Gi"


def test_total_gpus_beyond_the_pool():
    assert refusal(gan("local", "workers=11")) == \
        "11 workers × 4 GPUs = 44 GPUs but pool gpu of cluster local has 40 (10 nodes × 4)"
    assert refusal(gan("gcp", "workers=129"), "gcp") == \
        "129 workers × 8 GPUs = 1032 GPUs but pool gpu of cluster gcp has 1024 (128 nodes × 8)"
    assert check_fit(gan("gcp", "workers=128"), CLUSTERS["gcp"]) == []


def test_workers_that_do_not_pack_onto_nodes():
    # 3 GPUs per worker: 40 GPUs in total, but only one such worker fits on a 4-GPU node.
    assert check_fit(gan("local", "resources.gpus=3", "workers=10"), CLUSTERS["local"]) == []
    assert refusal(gan("local", "resources.gpus=3", "workers=11")) == \
        "11 workers but at most 10 fit pool gpu of cluster local (1 per node × 10 nodes)"
    # CPU-bound packing: 20 CPUs per worker on 32-CPU nodes.
    assert refusal(gan("local", "resources.gpus=1", "resources.cpu=20", "workers=11")) == \
        "11 workers but at most 10 fit pool gpu of cluster local (1 per node × 10 nodes)"


def test_pool_missing_or_without_gpus_is_a_usage_error():
    with pytest.raises(UsageError, match=r"cluster gcp has no pool cpu \(its pools: gpu\)"):
        check_fit(gan("gcp", "resources.pool=cpu"), CLUSTERS["gcp"])
    with pytest.raises(UsageError, match="pool cpu of cluster local has no GPUs"):
        check_fit(gan("local", "resources.pool=cpu"), CLUSTERS["local"])
    assert check_fit(gan("local", "resources.pool=cpu", "resources.gpus=0", "workers=40",
                         "resources.cpu=64"), CLUSTERS["local"]) == []


def test_unknown_capacity_is_not_checked():
    sparse = {"name": "tiny", "pools": {"gpu": {"gpuResource": "nvidia.com/gpu"}}}
    assert check_fit(gan("local", "workers=4096"), sparse) == []


# ---- quota ---------------------------------------------------------------------------------------------

QUOTA = {"hard": {"requests.nvidia.com/gpu": "8", "requests.cpu": "32", "requests.memory": "100Gi",
                  "limits.memory": "1Ti", "pods": "20", "count/tfjobs.kubeflow.org": "5"},
         "used": {"requests.nvidia.com/gpu": "4", "requests.cpu": "5500m", "requests.memory": "0"}}


def test_quota_headroom_numbers():
    message = refusal(gan("local"), quota=QUOTA)  # 4 workers × 4 GPUs, 16 CPUs, 64Gi
    parts = message.split("; ")
    assert parts == [  # one clause per resource, GPUs first
        "the job needs 16 GPUs but the namespace quota has 4 free (requests.nvidia.com/gpu: 8 hard, 4 used)",
        "the job needs 64 CPUs but the namespace quota has 26.5 free (requests.cpu: 32 hard, 5.5 used)",
        "the job needs 256Gi of memory but the namespace quota has 100Gi free "
        "(requests.memory: 100Gi hard, 0 used)",
    ]


def test_gpus_limited_by_requests_and_limits_are_reported_once_by_the_counted_key():
    quota = {"hard": {"requests.nvidia.com/gpu": "9", "limits.nvidia.com/gpu": "8"}, "used": {}}
    message = refusal(gan("local"), quota=quota)
    assert message == ("the job needs 16 GPUs but the namespace quota has 9 free "
                       "(requests.nvidia.com/gpu: 9 hard, 0 used)")


def test_quota_that_fits():
    small = gan("local", "workers=1", "resources.cpu=8", "resources.memory=16Gi")
    assert check_fit(small, CLUSTERS["local"], QUOTA) == []
    exactly = gan("local", "workers=1", "resources.cpu=26.5", "resources.memory=100Gi")
    assert check_fit(exactly, CLUSTERS["local"], QUOTA) == []
    over = gan("local", "workers=1", "resources.cpu=26.6", "resources.memory=100Gi")
    assert "needs 26.6 CPUs" in refusal(over, quota=QUOTA)


def test_quota_pods_and_overspent_quota():
    assert "needs 21 pods" in refusal(gan("local", "resources.gpus=0", "resources.pool=cpu", "workers=21",
                                          "resources.cpu=100m", "resources.memory=1Gi"),
                                      quota={"hard": {"pods": "20"}, "used": {}})
    overspent = {"hard": {"requests.nvidia.com/gpu": "4"}, "used": {"requests.nvidia.com/gpu": "6"}}
    assert "has 0 free (requests.nvidia.com/gpu: 4 hard, 6 used)" in refusal(gan("local"), quota=overspent)


def test_quota_without_gpu_key_or_unreadable_values_is_ignored():
    assert check_fit(gan("local"), CLUSTERS["local"], {"hard": {"requests.cpu": "lots"}, "used": {}}) == []
    assert check_fit(gan("local"), CLUSTERS["local"], {}) == []


# ---- warnings ------------------------------------------------------------------------------------------

def test_warnings_for_preemptible_never_and_open_ended_cost():
    spec = gan("gcp", "restartPolicy=Never")
    assert any("preemptible: restartPolicy Never becomes ExitCode" in w for w in check_fit(spec, CLUSTERS["gcp"]))
    open_ended = load_spec(GAN.replace("    activeDeadlineSeconds: 21600\n", ""), "3dgan.yaml", cluster="gcp")
    (warning,) = check_fit(open_ended, CLUSTERS["gcp"])
    assert warning == "no activeDeadlineSeconds: the job costs about 320.00/hour on gcp (128 GPUs × 2.5) until it ends"
