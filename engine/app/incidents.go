package app

import (
	"context"
	"net/http"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/incident"
	"github.com/remedyhq/remedy/engine/webauth"
)

// incidentsPage builds the /incidents page over the store, with the approvals page's
// login: a browser's session (engine/webauth), or an API client's Authorization header.
func (a *App) incidentsPage(st audit.Store, sessions *webauth.Sessions) http.Handler {
	o := incident.Options{Store: st, Auth: incidentAuth(sessions), State: a.Guards.State,
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

// incidentAuth admits the approvers file's identities, any role: a page's session, or
// the Authorization header of an API client; forms carry the session's CSRF token.
// Without an approvers file the page is open, like the audit API.
func incidentAuth(s *webauth.Sessions) incident.Auth {
	return incident.AuthFuncs{
		ViewerFunc: func(r *http.Request) (incident.Viewer, error) {
			t := s.Tokens()
			if len(t.Tokens) == 0 {
				return incident.Viewer{Name: "anyone", Role: "no approvers file"}, nil
			}
			id, ok := t.Authenticate(r)
			if !ok {
				sess, open := s.Get(r)
				if !open {
					return incident.Viewer{}, incident.ErrNotLoggedIn
				}
				id = sess.Identity
			}
			if !id.Role.Allows(webauth.Viewer) {
				return incident.Viewer{}, incident.ErrNotAllowed
			}
			return incident.Viewer{Name: id.Name, Role: string(id.Role)}, nil
		},
		CSRFFunc: func(r *http.Request) string {
			if sess, ok := s.Get(r); ok {
				return sess.CSRF
			}
			return ""
		},
	}
}
