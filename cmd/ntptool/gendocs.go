//go:build gendocs

package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// devCommands adds gen-docs, built only with -tags gendocs (make package
// runs it), so that the released binary carries no man page generator.
func devCommands() []*cobra.Command {
	var manDir, version string
	cmd := &cobra.Command{
		Use:    "gen-docs --man DIR",
		Short:  "Write the man pages of every command (packaging)",
		Hidden: true,
		Args:   argsExactly(0, "arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if manDir == "" {
				return usageError("gen-docs: --man DIR is required")
			}
			// Reproducible pages: the date comes from SOURCE_DATE_EPOCH
			// (the commit time, set by make package).
			date := time.Unix(0, 0).UTC()
			if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
				sec, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return usageError("SOURCE_DATE_EPOCH=%q: %v", s, err)
				}
				date = time.Unix(sec, 0).UTC()
			}
			if err := os.MkdirAll(manDir, 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			header := &doc.GenManHeader{Title: "NTPTOOL", Section: "1", Source: "ntptool " + version, Manual: "ntptool manual", Date: &date}
			if err := doc.GenManTree(root, header, manDir); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&manDir, "man", "", "directory for the man pages (section 1)")
	cmd.Flags().StringVar(&version, "version", "dev", "version named in the pages' footer")
	return []*cobra.Command{cmd}
}
