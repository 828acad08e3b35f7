package approval

import "github.com/remedyhq/remedy/engine/webauth"

// Identity and Role are webauth's: the approvers file, the page's login and the API's
// bearer tokens are shared by every page and API of the engine.
type (
	Identity = webauth.Identity
	Role     = webauth.Role
)

// Roles, in increasing power.
const (
	Viewer   = webauth.Viewer
	Approver = webauth.Approver
	Admin    = webauth.Admin
)
