package natsauth_test

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/remedyhq/remedy/engine/natsauth"
)

// BenchmarkAgentConnect: one agent connection through the auth callout, end to end on
// the real servers: the client's CONNECT, the authorization request, the TokenReview and
// pod lookup on kube-apiserver, the signed user, the server's acceptance. Run with -cpu
// to see how reviews in parallel scale (a reconnect storm after a NATS restart).
func BenchmarkAgentConnect(b *testing.B) {
	e := start(b)
	tok := e.agentPod(b, ns, agentSA, "node-bench", audience)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			nc, err := nats.Connect(e.srv.ClientURL(), nats.Token(tok), nats.MaxReconnects(0))
			if err != nil {
				b.Error(err)
				return
			}
			nc.Close()
		}
	})
}

// BenchmarkReview: the reviewer alone (TokenReview and pod get on kube-apiserver), the
// share of BenchmarkAgentConnect that is the API server's.
func BenchmarkReview(b *testing.B) {
	e := start(b)
	tok := e.agentPod(b, ns, agentSA, "node-bench", audience)
	rev := natsauth.KubeReviewer{Client: e.kube, Namespace: ns, ServiceAccount: agentSA}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rev.Review(e.ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
