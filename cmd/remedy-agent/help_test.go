package main

import (
	"testing"

	"github.com/remedyhq/remedy/cmd/internal/cli/clitest"
)

// TestHelp keeps every command's help reviewed: testdata/help/*.golden (-update rewrites).
func TestHelp(t *testing.T) { clitest.Help(t, newRoot) }
