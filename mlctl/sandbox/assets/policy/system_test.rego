package system.authz_test

import data.system.authz

test_health_and_the_two_queries_are_allowed if {
	authz.allow with input as {"method": "GET", "path": ["health"]}
	authz.allow with input as {"method": "POST", "path": ["v1", "data", "mlctl", "clusters", "decision"]}
	authz.allow with input as {"method": "POST", "path": ["v1", "data", "mlctl", "clusters", "decisions"]}
	authz.allow with input as {"method": "POST", "path": ["v0", "data", "mlctl", "authz", "review", "gcp"]}
	authz.allow with input as {"method": "GET", "path": ["v1", "data", "mlctl", "config", "clusters"]}
}

test_changing_policy_or_data_over_the_api_is_refused if {
	every req in [
		{"method": "PUT", "path": ["v1", "policies", "x"]},
		{"method": "DELETE", "path": ["v1", "policies", "clusters.rego"]},
		{"method": "PUT", "path": ["v1", "data", "mlctl", "config"]},
		{"method": "PATCH", "path": ["v1", "data", "mlctl", "config", "clusters"]},
		{"method": "PUT", "path": ["v1", "data", "mlctl", "clusters", "decision"]},
		{"method": "POST", "path": ["v1", "data", "system", "authz", "allow"]},
		{"method": "POST", "path": ["v1", "query"]},
		{"method": "POST", "path": ["v1", "compile"]},
		{"method": "GET", "path": ["v1", "policies"]},
		{"method": "POST", "path": ["v0", "data", "mlctl", "clusters", "decision"]},
		{"method": "GET", "path": []},
		{},
	] {
		not authz.allow with input as req
	}
}
