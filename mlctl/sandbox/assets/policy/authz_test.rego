package mlctl.authz_test

import data.mlctl.authz

review(user, groups) := {
	"apiVersion": "authorization.k8s.io/v1",
	"kind": "SubjectAccessReview",
	"spec": {
		"user": user,
		"groups": groups,
		"resourceAttributes": {"namespace": "u-x", "verb": "create", "group": "kubeflow.org", "resource": "tfjobs"},
	},
}

test_carol_is_denied_on_gcp_with_the_policys_reason if {
	r := authz.review.gcp with input as review("oidc:carol", ["oidc:ml-users", "system:authenticated"])
	r.apiVersion == "authorization.k8s.io/v1"
	r.kind == "SubjectAccessReview"
	r.status == {
		"allowed": false, "denied": true,
		"reason": "cluster gcp is open only to members of burst-gcp or platform-admins, and carol is in ml-users",
	}
}

test_alice_gets_no_opinion_so_rbac_decides if {
	r := authz.review.gcp with input as review("oidc:alice", ["oidc:ml-users", "oidc:burst-gcp", "system:authenticated"])
	r.status.allowed == false
	r.status.denied == false
}

test_the_webhook_never_grants if {
	every user in ["oidc:alice", "oidc:carol", "system:admin", "mlctl-sandbox-admin"] {
		every name in ["local", "gcp"] {
			r := authz.review[name] with input as review(user, ["oidc:burst-gcp", "system:masters"])
			r.status.allowed == false
		}
	}
}

test_non_platform_identities_get_no_opinion if {
	every who in [
		["mlctl-sandbox-admin", ["system:masters", "system:authenticated"]],
		["system:serviceaccount:kubeflow:training-operator", ["system:serviceaccounts", "system:serviceaccounts:kubeflow"]],
		["system:kube-scheduler", []],
		["system:node:kwok-node-0", ["system:nodes"]],
		["system:anonymous", ["system:unauthenticated"]],
	] {
		r := authz.review.gcp with input as review(who[0], who[1])
		r.status == {"allowed": false, "denied": false, "reason": "not a platform user; RBAC decides"}
	}
}

test_an_unprefixed_group_name_grants_nothing if {
	# a group named burst-gcp that did not come from Keycloak (no prefix) is not the platform's group
	r := authz.review.gcp with input as review("oidc:carol", ["burst-gcp", "oidc:ml-users"])
	r.status.denied == true
}

test_a_prefixed_name_is_not_enough_for_a_group_of_another_prefix if {
	r := authz.review.gcp with input as review("oidc:carol", ["system:burst-gcp"])
	r.status.denied == true
}

test_everyone_known_to_the_policy_may_use_local if {
	r := authz.review.local with input as review("oidc:carol", ["oidc:ml-users"])
	r.status.denied == false
}

test_a_review_without_groups_is_judged_on_the_user_alone if {
	pods := {"verb": "list", "resource": "pods", "namespace": "u-carol"}
	r := authz.review.gcp with input as {"spec": {"user": "oidc:service-account-mlctl-admin", "resourceAttributes": pods}}
	r.status.denied == false
	s := authz.review.gcp with input as {"spec": {"user": "oidc:carol", "resourceAttributes": pods}}
	s.status.denied == true
}

inquiry(attributes) := {"spec": object.union({"user": "oidc:carol", "groups": ["oidc:ml-users"]}, attributes)}

test_a_kept_out_user_may_still_discover_and_ask_about_herself if {
	every attributes in [
		{"nonResourceAttributes": {"path": "/apis", "verb": "get"}},
		{"nonResourceAttributes": {"path": "/api/v1", "verb": "get"}},
		{"nonResourceAttributes": {"path": "/version", "verb": "get"}},
		{"resourceAttributes": {"group": "authentication.k8s.io", "resource": "selfsubjectreviews", "verb": "create"}},
		{"resourceAttributes": {"group": "authorization.k8s.io", "resource": "selfsubjectaccessreviews", "verb": "create"}},
		{"resourceAttributes": {"group": "authorization.k8s.io", "resource": "selfsubjectrulesreviews", "verb": "create"}},
	] {
		r := authz.review.gcp with input as inquiry(attributes)
		r.status == {"allowed": false, "denied": false, "reason": "asks who the user is or what they may do; RBAC decides"}
	}
}

test_only_the_self_inquiries_are_let_through if {
	every attributes in [
		{"group": "authorization.k8s.io", "resource": "subjectaccessreviews", "verb": "create"},
		{"group": "authorization.k8s.io", "resource": "selfsubjectaccessreviews", "verb": "delete"},
		{"group": "authentication.k8s.io", "resource": "selfsubjectreviews", "verb": "create", "subresource": "status"},
		{"group": "authentication.k8s.io", "resource": "tokenreviews", "verb": "create"},
		{"group": "", "resource": "selfsubjectreviews", "verb": "create"},
		{"group": "kubeflow.org", "resource": "tfjobs", "verb": "create", "namespace": "u-carol"},
	] {
		r := authz.review.gcp with input as inquiry({"resourceAttributes": attributes})
		r.status.denied == true
	}
}

test_a_cluster_outside_the_policy_has_no_review if {
	not authz.review.elsewhere with input as review("oidc:carol", [])
}

test_prefixes_come_from_the_data if {
	r := authz.review.gcp with input as review("kc:alice", ["kc:burst-gcp"])
		with data.mlctl.config.usernamePrefix as "kc:"
		with data.mlctl.config.groupPrefix as "kc:"
	r.status.denied == false
	s := authz.review.gcp with input as review("kc:carol", ["kc:ml-users"])
		with data.mlctl.config.usernamePrefix as "kc:"
		with data.mlctl.config.groupPrefix as "kc:"
	s.status.denied == true
}
