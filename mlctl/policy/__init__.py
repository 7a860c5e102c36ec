"""OPA queries and explanations: may a user (with a job) use a cluster, and why not (DESIGN.md, "Cluster
policy"; docs/policy.md). The one client is mlctl.policy.opa; it imports nothing beyond the standard library."""

from mlctl.policy.opa import Client, Decision, decide, decisions, require

__all__ = ["Client", "Decision", "decide", "decisions", "require"]
