# METADATA
# title: Who may call this OPA's own HTTP API
# description: |
#   The server runs with --authorization=basic, so every request needs data.system.authz.allow. Only the
#   read-only queries mlctl and the API servers make are allowed; loading or replacing policies and data
#   over the API (PUT/PATCH/DELETE /v1/policies, /v1/data), ad-hoc queries and compiles are refused, so the
#   policy is what the files on disk say.
package system.authz

default allow := false

allow if {
	input.method == "GET"
	input.path == ["health"]
}

# mlctl: POST /v1/data/mlctl/clusters/decision (and .../decisions) with {"input": ...}
allow if {
	input.method == "POST"
	array.slice(input.path, 0, 4) == ["v1", "data", "mlctl", "clusters"]
}

# the API servers' authorization webhook: POST /v0/data/mlctl/authz/review/<cluster>
allow if {
	input.method == "POST"
	array.slice(input.path, 0, 5) == ["v0", "data", "mlctl", "authz", "review"]
}

# reading the policy's data (who may use which cluster) is harmless and helps explain a decision
allow if {
	input.method == "GET"
	array.slice(input.path, 0, 4) == ["v1", "data", "mlctl", "config"]
}
