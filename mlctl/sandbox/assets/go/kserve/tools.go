//go:build tools

// Package tools pins the KServe controller manager, so that
// `go mod tidy` keeps it in go.mod.
package tools

import (
	_ "github.com/kserve/kserve/cmd/manager"
)
