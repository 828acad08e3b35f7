package app

import (
	"context"
	"net/http"
	"strings"

	"github.com/remedyhq/remedy/engine/approval"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/incident"
)

// incidentsPage builds the /incidents page over the store, with the approvals page's
// login (its token cookie or a bearer token) as the page's Auth. This is the seam a
// session login replaces: incidentAuth is all there is to change.
func (a *App) incidentsPage(st audit.Store, tokens approval.Tokens) http.Handler {
	o := incident.Options{Store: st, Auth: incidentAuth(tokens), State: a.Guards.State,
		Pending: func(ctx context.Context) ([]incident.Pending, error) {
			list, err := a.Approvals.List(ctx, false)
			if err != nil {
				return nil, err
			}
			out := make([]incident.Pending, len(list))
			for i, r := range list {
				out[i] = incident.Pending{ID: r.ID, Action: r.Held.Request.Action, Node: r.Held.Request.Node,
					CorrelationID: r.Held.Request.CorrelationID, RequestedAt: r.RequestedAt, ExpiresAt: r.ExpiresAt,
					Votes: len(r.Votes), Need: r.NeedVotes}
			}
			return out, nil
		}}
	ir, ok := st.(audit.IncidentReader)
	if !ok {
		return http.NotFoundHandler()
	}
	o.Reader = ir
	return incident.Handler(o)
}

// tokenCookie is the cookie the approvals page's login form sets.
const tokenCookie = "remedy_token"

// incidentAuth admits the approvers file's identities, any role, by bearer token or the
// approvals page's cookie; the token cookie is SameSite=Strict, and the page posts no
// form of its own, so it needs no CSRF token. Without an approvers file the page is
// open, like the audit API.
func incidentAuth(t approval.Tokens) incident.Auth {
	return incident.AuthFuncs{ViewerFunc: func(r *http.Request) (incident.Viewer, error) {
		if len(t.Tokens) == 0 {
			return incident.Viewer{Name: "anyone", Role: "no approvers file"}, nil
		}
		tok := ""
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			tok = strings.TrimPrefix(h, "Bearer ")
		} else if c, err := r.Cookie(tokenCookie); err == nil {
			tok = c.Value
		}
		id, ok := t.Lookup(tok)
		switch {
		case !ok:
			return incident.Viewer{}, incident.ErrNotLoggedIn
		case !id.Role.Allows(approval.Viewer):
			return incident.Viewer{}, incident.ErrNotAllowed
		}
		return incident.Viewer{Name: id.Name, Role: string(id.Role)}, nil
	}}
}
