"""Pure helpers of mlctl/kube/jobs.py."""

from __future__ import annotations

from mlctl.kube.jobs import REPLICA_INDEX_LABEL, REPLICA_TYPE_LABEL, replica_of


def test_replica_of_reads_the_training_operator_labels():
    pod = {"metadata": {"labels": {REPLICA_TYPE_LABEL: "Worker", REPLICA_INDEX_LABEL: "3"}}}
    assert replica_of(pod) == ("worker", "3")
    assert replica_of({"metadata": {"labels": {REPLICA_TYPE_LABEL: "chief"}}}) == ("chief", None)
    assert replica_of({"metadata": {}}) == ("", None)
