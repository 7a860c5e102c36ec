//go:build tools

// Package tools pins the Open Policy Agent command, so that `go mod tidy`
// keeps it in go.mod.
package tools

import (
	_ "github.com/open-policy-agent/opa"
)
