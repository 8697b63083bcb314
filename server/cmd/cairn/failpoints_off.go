//go:build !chaosfailpoints

package main

import (
	"log/slog"

	"github.com/cairn-db/cairn/server/member"
)

// plantFailpoints does nothing: production builds have no failpoints. See
// failpoints.go, built only with the chaosfailpoints tag.
func plantFailpoints(*member.Config, *slog.Logger) error { return nil }
