# METADATA
# title: Cluster policy
# description: |
#   Which groups may use which cluster of the platform, with per-job limits, and a reason for every deny.
#   The rules are here; who may use what is data (data.mlctl.config.clusters, data.json beside this file),
#   so admins change groups and limits without touching Rego. docs/policy.md describes both.
package mlctl.clusters

clusters := data.mlctl.config.clusters

# The decision for input.cluster. Input: {"user": "carol", "groups": ["ml-users"], "cluster": "gcp",
# "job": {"gpus": 16, "pools": ["gpu"], "preemptible": true}} (job optional).
# Result: {"cluster", "allow", "reasons": [...], "rule", "limits": {"maxGpusPerJob", "pools", "preemptibleOnly"}}.
decision := decide(_user, _groups, _cluster, _job)

# The decision for every cluster in the policy, by name (input.cluster is not needed).
decisions := {name: decide(_user, _groups, name, _job) | some name, _ in clusters}

decide(user, groups, name, job) := {
	"cluster": name,
	"allow": count(denials) == 0,
	"reasons": [d.reason | some d in denials],
	"rule": _rule(denials),
	"limits": _limits(name),
} if {
	denials := array.concat(_cluster_denials(name), array.concat(_member_denials(user, groups, name), _job_denials(name, job)))
}

# ---- normalized input: a missing or mistyped field never turns into an allow ------------------------------

_user := input.user if is_string(input.user)

else := ""

_groups := [g | some g in input.groups; is_string(g)] if is_array(input.groups)

else := []

_cluster := input.cluster if is_string(input.cluster)

else := ""

_job := input.job if is_object(input.job)

else := {}

# ---- the checks, in the order their reasons are reported --------------------------------------------------

_rule(denials) := denials[0].rule if count(denials) > 0

else := "allowed"

_limits(name) := {
	"maxGpusPerJob": object.get(clusters[name], "maxGpusPerJob", null),
	"pools": object.get(clusters[name], "pools", null),
	"preemptibleOnly": object.get(clusters[name], "preemptibleOnly", false) == true,
} if clusters[name]

else := {}

_cluster_denials(name) := [] if clusters[name]

else := [{"rule": "unknown-cluster", "reason": sprintf("cluster %q is not in the platform's cluster policy", [name])}]

_member(_, groups, entry) if {
	some g in groups
	g in object.get(entry, "groups", [])
}

_member(user, _, entry) if {
	user != ""
	user in object.get(entry, "users", [])
}

_member_denials(user, groups, name) := [] if not clusters[name]

else := [] if _member(user, groups, clusters[name])

else := [{"rule": "group", "reason": sprintf("cluster %s is open only to members of %s, and %s is in %s", [
	name, _either(object.get(clusters[name], "groups", [])), _who(user), _groups_of(groups),
])}]

_job_denials(name, job) := array.concat(
	_invalid_job(job),
	array.concat(_gpu_denials(name, job), array.concat(_pool_denials(name, job), _preemptible_denials(name, job))),
) if clusters[name]

else := []

_invalid_job(job) := [{"rule": "invalid-job", "reason": concat("; ", problems)}] if {
	problems := array.concat(_gpus_problem(job), array.concat(_pools_problem(job), _preemptible_problem(job)))
	count(problems) > 0
}

else := []

_gpus_problem(job) := [sprintf("job.gpus must be a whole number of GPUs, not %v", [job.gpus])] if {
	"gpus" in object.keys(job)
	not _whole_number(job.gpus)
}

else := []

_pools_problem(job) := [sprintf("job.pools must be a list of pool names, not %v", [job.pools])] if {
	"pools" in object.keys(job)
	not _strings(job.pools)
}

else := []

_preemptible_problem(job) := [sprintf("job.preemptible must be true or false, not %v", [job.preemptible])] if {
	"preemptible" in object.keys(job)
	not is_boolean(job.preemptible)
}

else := []

_whole_number(x) if {
	is_number(x)
	x >= 0
	floor(x) == x
}

_strings(xs) if {
	is_array(xs)
	every x in xs { is_string(x) }
}

_gpu_denials(name, job) := [{"rule": "gpus-per-job", "reason": sprintf(
	"a job on %s may use at most %v GPUs, and this one asks for %v",
	[name, clusters[name].maxGpusPerJob, job.gpus],
)}] if {
	is_number(clusters[name].maxGpusPerJob)
	is_number(job.gpus)
	job.gpus > clusters[name].maxGpusPerJob
}

else := []

_pool_denials(name, job) := [{"rule": "pools", "reason": sprintf("%s not available on %s (allowed: %s)", [_pools_phrase(refused), name, _list(clusters[name].pools)])}] if {
	is_array(clusters[name].pools)
	_strings(job.pools)
	refused := [p | some p in job.pools; not p in clusters[name].pools]
	count(refused) > 0
}

else := []

_pools_phrase(pools) := sprintf("pool %s is", [pools[0]]) if count(pools) == 1

else := sprintf("pools %s are", [_list(pools)])

_preemptible_denials(name, job) := [{"rule": "preemptible-only", "reason": sprintf("cluster %s runs jobs on preemptible capacity only, and this job does not use preemptible nodes", [name])}] if {
	clusters[name].preemptibleOnly == true
	count(job) > 0
	not job.preemptible == true
}

else := []

# ---- wording -----------------------------------------------------------------------------------------------

_list(xs) := concat(", ", sort(xs)) if count(xs) > 0

else := "nobody"

_either(xs) := concat(" or ", sort(xs)) if count(xs) > 0

else := "no group"

_who(user) := user if user != ""

else := "the caller"

_groups_of(groups) := concat(", ", sort(groups)) if count(groups) > 0

else := "no group"
