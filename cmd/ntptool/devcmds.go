//go:build !gendocs

package main

import "github.com/spf13/cobra"

// devCommands are commands for building the project, compiled in only
// with -tags gendocs (see gendocs.go); the released binary has none.
func devCommands() []*cobra.Command { return nil }
