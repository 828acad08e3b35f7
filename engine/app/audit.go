package app

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/auditstore"
	"github.com/remedyhq/remedy/engine/webauth"
)

// openAudit opens the audit store the options select: PostgreSQL for a postgres:// DSN,
// else SQLite (by default in the data directory).
func openAudit(ctx context.Context, o Options) (audit.Log, error) {
	if o.AuditRetention > 0 && o.AuditKey == nil {
		return nil, errors.New("audit retention needs a checkpoint key (--audit-key-file)")
	}
	return auditstore.Open(ctx, o.AuditDSN, filepath.Join(o.DataDir, "audit.db"), audit.Options{Keys: o.AuditKey})
}

// auditAuth admits the approvers file's identities (viewers and up) to the audit API,
// the policy API and /metrics. Without an approvers file they stay open, as they were
// before the file existed.
func auditAuth(t webauth.Tokens) func(*http.Request) error {
	if len(t.Tokens) == 0 {
		return nil
	}
	return func(r *http.Request) error {
		id, ok := t.Authenticate(r)
		if !ok || !id.Role.Allows(webauth.Viewer) {
			return errors.New("a valid bearer token is required")
		}
		return nil
	}
}

// requesterOf admits an approver's (or admin's) token on the webhook: the alerts it posts
// are raised by that person, who then may not approve what they lead to.
func requesterOf(t webauth.Tokens) func(string) (string, bool) {
	if len(t.Tokens) == 0 {
		return nil
	}
	return func(tok string) (string, bool) {
		id, ok := t.Lookup(tok)
		if !ok || !id.Role.Allows(webauth.Approver) {
			return "", false
		}
		return id.Name, true
	}
}
