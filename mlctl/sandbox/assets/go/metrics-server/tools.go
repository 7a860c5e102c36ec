//go:build tools

// Package tools pins metrics-server, which serves metrics.k8s.io (pod and node CPU and memory) to the
// sandbox's HorizontalPodAutoscalers from kwok's kubelet-style resource metrics.
package tools

import (
	_ "sigs.k8s.io/metrics-server/cmd/metrics-server"
)
