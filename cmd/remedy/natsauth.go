package main

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/remedyhq/remedy/cmd/internal/cli"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/natsauth"
)

// natsAuthFlags registers the flags of the NATS auth callout (deploy/README.md, agents
// that prove who they are) and returns a function that turns them into app options:
// nil without --nats-auth-callout-key.
func natsAuthFlags(fs *pflag.FlagSet) func() (*app.NATSAuth, error) {
	defer cli.Alias(fs, "nats-auth-callout-key", "nats-auth-callout-key-file")
	key := fs.String("nats-auth-callout-key-file", "", "account nkey seed the NATS server's auth_callout names as issuer: answer it, letting agents in with their ServiceAccount token (needs --kubeconfig or --in-cluster; configures the embedded server itself)")
	ns := fs.String("nats-auth-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the agents' ServiceAccount (default $POD_NAMESPACE)")
	sa := fs.String("nats-auth-service-account", "remedy-agent", "the agents' ServiceAccount")
	aud := fs.String("nats-auth-audience", natsauth.DefaultAudience, "audience of the agents' projected tokens")
	return func() (*app.NATSAuth, error) {
		if *key == "" {
			return nil, nil
		}
		b, err := os.ReadFile(*key)
		if err != nil {
			return nil, err
		}
		kp, err := natsauth.LoadIssuer(b)
		if err != nil {
			return nil, err
		}
		return &app.NATSAuth{Issuer: kp, Namespace: *ns, ServiceAccount: *sa, Audience: *aud}, nil
	}
}
