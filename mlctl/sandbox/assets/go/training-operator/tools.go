//go:build tools

// Package tools pins the Kubeflow training-operator manager, so that
// `go mod tidy` keeps it in go.mod.
package tools

import (
	_ "github.com/kubeflow/training-operator/cmd/training-operator.v1"
)
