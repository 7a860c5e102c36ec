"""Pure helpers of mlctl/kube/jobs.py."""

from __future__ import annotations

from mlctl.kube.jobs import REPLICA_INDEX_LABEL, REPLICA_TYPE_LABEL, replica_of


def test_replica_of_reads_the_training_operator_labels():
    pod = {"metadata": {"labels": {REPLICA_TYPE_LABEL: "Worker", REPLICA_INDEX_LABEL: "3"}}}
    assert replica_of(pod) == ("worker", "3")
    assert replica_of({"metadata": {"labels": {REPLICA_TYPE_LABEL: "chief"}}}) == ("chief", None)
    assert replica_of({"metadata": {}}) == ("", None)


def test_recreated_pods_are_those_after_the_first_gap_in_creation_times():
    """A first pass that took 4 s (16 pods, a few a second) is no re-creation; the pods after a gap are."""
    from mlctl.kube.jobs import restarts

    def pod(name, second):
        return {"metadata": {"name": name, "creationTimestamp": f"2026-01-01T00:00:{second:02d}Z"}}

    seconds = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3]
    first_pass = [pod(f"w-{i}", s) for i, s in enumerate(seconds)]
    assert restarts({}, first_pass)["recreated"] == []
    lost = {"w-2", "w-6", "w-14"}
    again = [pod("w-2", 9), pod("w-6", 9), pod("w-14", 10)]
    result = restarts({}, [p for p in first_pass if p["metadata"]["name"] not in lost] + again)
    assert result["recreated"] == ["w-14", "w-2", "w-6"]
    assert restarts({}, [])["recreated"] == []
