//go:build tools

// Package tools pins versitygw, the sandbox's S3 server, so that
// `go mod tidy` keeps it in go.mod.
package tools

import (
	_ "github.com/versity/versitygw/cmd/versitygw"
)
