// Package policies holds remedy's default Rego policy library (one .rego file per
// condition beside its _test.rego, thresholds in config.yaml) and the Go tests that run
// its Rego tests and the OPA CLI's checks, so that `go test ./...` covers the policies.
// See README.md for policy authors and docs/policies.md for the contract.
package policies

import "embed"

// Library is the library's files (policies, tests and config.yaml) as built into the
// binary: `remedy demo` runs it from anywhere.
//
//go:embed *.rego config.yaml
var Library embed.FS
