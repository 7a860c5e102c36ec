package mlctl.clusters_test

import data.mlctl.clusters

# ---- the sandbox's own data (data.json) -------------------------------------------------------------------

carol := {"user": "carol", "groups": ["ml-users"]}

alice := {"user": "alice", "groups": ["burst-gcp", "ml-users"]}

fits_gcp := {"gpus": 64, "pools": ["gpu"], "preemptible": true}

test_carol_may_not_burst_to_gcp if {
	d := clusters.decision with input as object.union(carol, {"cluster": "gcp"})
	d.allow == false
	d.rule == "group"
	d.reasons == ["cluster gcp is open only to members of burst-gcp or platform-admins, and carol is in ml-users"]
}

test_carol_may_use_local if {
	d := clusters.decision with input as object.union(carol, {"cluster": "local"})
	d.allow == true
	d.reasons == []
	d.rule == "allowed"
}

test_alice_may_burst_a_job_that_fits if {
	d := clusters.decision with input as object.union(alice, {"cluster": "gcp", "job": fits_gcp})
	d.allow == true
	d.limits == {"maxGpusPerJob": 128, "pools": ["gpu"], "preemptibleOnly": true}
}

test_admins_and_the_sync_account_may_use_gcp if {
	every who in [{"user": "dave", "groups": ["ml-users", "platform-admins"]}, {"user": "service-account-mlctl-admin"}] {
		d := clusters.decision with input as object.union(who, {"cluster": "gcp"})
		d.allow == true
	}
}

test_bob_power_user_is_not_a_burster if {
	d := clusters.decision with input as {"user": "bob", "groups": ["ml-users", "gpu-power-users"], "cluster": "gcp"}
	d.allow == false
}

test_gcp_limits_each_with_its_reason if {
	d := clusters.decision with input as object.union(alice, {
		"cluster": "gcp",
		"job": {"gpus": 256, "pools": ["gpu", "vgpu"], "preemptible": false},
	})
	d.allow == false
	d.rule == "gpus-per-job"
	d.reasons == [
		"a job on gcp may use at most 128 GPUs, and this one asks for 256",
		"pool vgpu is not available on gcp (allowed: gpu)",
		"cluster gcp runs jobs on preemptible capacity only, and this job does not use preemptible nodes",
	]
}

test_exactly_the_limit_is_allowed if {
	d := clusters.decision with input as object.union(alice, {"cluster": "gcp", "job": object.union(fits_gcp, {"gpus": 128})})
	d.allow == true
}

test_one_over_the_limit_is_denied if {
	d := clusters.decision with input as object.union(alice, {"cluster": "gcp", "job": object.union(fits_gcp, {"gpus": 129})})
	d.rule == "gpus-per-job"
}

test_a_job_that_does_not_say_it_is_preemptible_is_denied_on_gcp if {
	d := clusters.decision with input as object.union(alice, {"cluster": "gcp", "job": {"gpus": 8, "pools": ["gpu"]}})
	d.allow == false
	d.rule == "preemptible-only"
}

test_local_has_no_job_limits if {
	d := clusters.decision with input as object.union(carol, {
		"cluster": "local",
		"job": {"gpus": 4000, "pools": ["vgpu", "gpu", "cpu"], "preemptible": false},
	})
	d.allow == true
	d.limits == {"maxGpusPerJob": null, "pools": null, "preemptibleOnly": false}
}

test_decisions_cover_every_cluster if {
	ds := clusters.decisions with input as carol
	object.keys(ds) == {"local", "gcp"}
	ds.local.allow == true
	ds.gcp.allow == false
	ds.gcp.cluster == "gcp"
}

# ---- rules, on data of their own --------------------------------------------------------------------------

policy := {"clusters": {"c": {"groups": ["g"], "users": ["robot"], "maxGpusPerJob": 8, "pools": ["a", "b"], "preemptibleOnly": false}}}

test_unknown_cluster_is_denied if {
	d := clusters.decision with input as {"user": "u", "groups": ["g"], "cluster": "nope"} with data.mlctl.config as policy
	d.allow == false
	d.rule == "unknown-cluster"
	d.reasons == [`cluster "nope" is not in the platform's cluster policy`]
	d.limits == {}
}

test_no_cluster_named_is_denied if {
	d := clusters.decision with input as {"user": "u", "groups": ["g"]} with data.mlctl.config as policy
	d.allow == false
	d.rule == "unknown-cluster"
}

test_empty_input_is_denied if {
	d := clusters.decision with input as {"cluster": "c"} with data.mlctl.config as policy
	d.allow == false
	d.reasons == ["cluster c is open only to members of g, and the caller is in no group"]
}

test_mistyped_groups_do_not_count if {
	every groups in ["g", {"g": true}, 7, [["g"]]] {
		d := clusters.decision with input as {"user": "u", "groups": groups, "cluster": "c"} with data.mlctl.config as policy
		d.allow == false
	}
}

test_a_listed_user_needs_no_group if {
	d := clusters.decision with input as {"user": "robot", "cluster": "c"} with data.mlctl.config as policy
	d.allow == true
}

test_an_empty_user_name_matches_no_user_entry if {
	d := clusters.decision with input as {"user": "", "cluster": "c"} with data.mlctl.config as policy with data.mlctl.config.clusters.c.users as [""]
	d.allow == false
}

test_several_refused_pools_are_named if {
	d := clusters.decision with input as {"user": "robot", "cluster": "c", "job": {"pools": ["z", "a", "y"]}} with data.mlctl.config as policy
	d.reasons == ["pools y, z are not available on c (allowed: a, b)"]
}

test_malformed_job_fields_are_denied_not_ignored if {
	d := clusters.decision with input as {"user": "robot", "cluster": "c", "job": {"gpus": "lots", "pools": "a", "preemptible": "yes"}} with data.mlctl.config as policy
	d.allow == false
	d.rule == "invalid-job"
	d.reasons == [`job.gpus must be a whole number of GPUs, not lots; job.pools must be a list of pool names, not a; job.preemptible must be true or false, not yes`]
}

test_fractional_and_negative_gpus_are_invalid if {
	every gpus in [1.5, -1] {
		d := clusters.decision with input as {"user": "robot", "cluster": "c", "job": {"gpus": gpus}} with data.mlctl.config as policy
		d.rule == "invalid-job"
	}
}

test_a_group_denial_comes_before_job_denials if {
	d := clusters.decision with input as {"user": "u", "groups": ["h"], "cluster": "c", "job": {"gpus": 9}} with data.mlctl.config as policy
	d.rule == "group"
	count(d.reasons) == 2
}

test_a_cluster_without_groups_is_open_to_nobody if {
	d := clusters.decision with input as {"user": "u", "groups": ["g"], "cluster": "c"} with data.mlctl.config as {"clusters": {"c": {}}}
	d.allow == false
	d.reasons == ["cluster c is open only to members of no group, and u is in g"]
	d.limits == {"maxGpusPerJob": null, "pools": null, "preemptibleOnly": false}
}
