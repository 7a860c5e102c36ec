# METADATA
# title: Authorization webhook of a cluster's API server
# description: |
#   review[<cluster>] answers the SubjectAccessReview that cluster's kube-apiserver POSTs to
#   /v0/data/mlctl/authz/review/<cluster> (the v0 API takes the review itself as input and returns this
#   document unwrapped, which is what the apiserver's webhook client expects).
#
#   The webhook only ever denies or has no opinion; it never grants, RBAC does. Platform users (the
#   apiserver's OIDC identities, "oidc:" prefixed) whose groups may not use the cluster are denied with the
#   cluster policy's reason; everyone else (system components, service accounts, client-certificate admins,
#   and platform users the policy allows) gets no opinion, and the next authorizer (RBAC) decides.
package mlctl.authz

import data.mlctl.clusters

_user_prefix := object.get(data.mlctl.config, "usernamePrefix", "oidc:")

_group_prefix := object.get(data.mlctl.config, "groupPrefix", "oidc:")

review[name] := {
	"apiVersion": "authorization.k8s.io/v1",
	"kind": "SubjectAccessReview",
	"status": _status(name),
} if some name, _ in clusters.clusters

# A platform identity: the apiserver mapped a Keycloak token to a prefixed user name.
platform_user := trim_prefix(input.spec.user, _user_prefix) if {
	is_string(input.spec.user)
	startswith(input.spec.user, _user_prefix)
}

platform_groups := [trim_prefix(g, _group_prefix) |
	some g in object.get(input.spec, "groups", [])
	is_string(g)
	startswith(g, _group_prefix)
]

_status(name) := {"allowed": false, "denied": false, "reason": "not a platform user; RBAC decides"} if {
	not platform_user
}

else := {"allowed": false, "denied": false, "reason": "asks who the user is or what they may do; RBAC decides"} if {
	_self_inquiry
}

else := {"allowed": false, "denied": true, "reason": concat("; ", decision.reasons)} if {
	decision := clusters.decide(platform_user, platform_groups, name, {})
	not decision.allow
}

else := {"allowed": false, "denied": false, "reason": sprintf("the cluster policy lets %s use %s; RBAC decides", [
	platform_user, name,
])}

# What a user the policy keeps out may still do, so that kubectl can tell them why: discovery and the other
# non-resource requests (the defaults grant authenticated users only discovery, health and version), and
# asking who they are (kubectl auth whoami) or what they may do (kubectl auth can-i, which then shows this
# policy's reason). Without it, kubectl's discovery fails first and prints "Forbidden: unknown".
_self_inquiry if not input.spec.resourceAttributes

_self_inquiry if {
	some self in [
		["authentication.k8s.io", "selfsubjectreviews"],
		["authorization.k8s.io", "selfsubjectaccessreviews"],
		["authorization.k8s.io", "selfsubjectrulesreviews"],
	]
	input.spec.resourceAttributes.group == self[0]
	input.spec.resourceAttributes.resource == self[1]
	input.spec.resourceAttributes.verb == "create"
	not input.spec.resourceAttributes.subresource
}
