//go:build tools

// Package tools pins hey, the HTTP load generator the serving bench compares
// `mlctl serve load` with, so that `go mod tidy` keeps it in go.mod.
package tools

import (
	_ "github.com/rakyll/hey"
)
