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

// auditAuth admits the approvers file's identities (viewers and up) to the audit API.
// Without an approvers file the audit API stays open, as it was before the file existed.
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
