// Package natsauth is the engine's NATS auth callout (nats-server 2.10 and later): node
// agents connect with their pod's projected ServiceAccount token, and the engine checks
// it with a TokenReview, finds the node of the pod it is bound to, and answers with a
// NATS user confined to that node's subjects. A node that joins the cluster gets its user
// on its agent's first connection; nothing is re-generated or re-applied.
//
// The server sends every connection but its auth_users (the engine) to
// $SYS.REQ.USER.AUTH; Service answers there, in a queue group so that several engine
// replicas share the work, with a response signed by the account key the server's
// auth_callout names as issuer.
package natsauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/remedyhq/remedy/wire/bus"
	"github.com/remedyhq/remedy/wire/signal"
)

// Subject is where nats-server sends authorization requests.
const Subject = "$SYS.REQ.USER.AUTH"

// Queue is the queue group the engine replicas answer in.
const Queue = "remedy-natsauth"

// Identity is what a checked token proves: the node whose agent holds it.
type Identity struct {
	Namespace, ServiceAccount, Pod string
	Node                           string
	// Expires is when the token expires (zero: unknown).
	Expires time.Time
}

// Reviewer checks a bearer token and names the node it speaks for (KubeReviewer).
type Reviewer interface {
	Review(ctx context.Context, token string) (Identity, error)
}

// Options configure a Service.
type Options struct {
	// Issuer is the account key pair (nkeys, seed starting "SA") whose public key the
	// server's auth_callout names as issuer; it signs the responses and the users.
	Issuer nkeys.KeyPair
	// Account places the users; default "$G", the account of a server without accounts.
	Account string
	// Reviewer checks the tokens.
	Reviewer Reviewer
	// MaxTTL bounds a user's life (default 1h); a user expires with its token at the
	// latest, and the agent reconnects with the rotated one.
	MaxTTL time.Duration
	// ReviewTimeout bounds one review (default 3s; the server's authorization timeout
	// must be longer).
	ReviewTimeout time.Duration
	// Workers is how many reviews run at once (default 16).
	Workers int
	Logger  *slog.Logger
	Now     func() time.Time
}

// LoadIssuer reads an account nkey seed (the file gen-secrets.sh writes).
func LoadIssuer(seed []byte) (nkeys.KeyPair, error) {
	kp, err := nkeys.FromSeed(trimSpace(seed))
	if err != nil {
		return nil, fmt.Errorf("nats auth callout issuer: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("nats auth callout issuer: %w", err)
	}
	if !nkeys.IsValidPublicAccountKey(pub) {
		return nil, errors.New("nats auth callout issuer: not an account key (its seed starts with SA)")
	}
	return kp, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// Service answers authorization requests until stopped.
type Service struct {
	o    Options
	sub  *nats.Subscription
	sem  chan struct{}
	ctx  context.Context
	stop context.CancelFunc
}

// Start subscribes on nc, which must be one of the server's auth_users.
func Start(nc *nats.Conn, o Options) (*Service, error) {
	if o.Issuer == nil || o.Reviewer == nil {
		return nil, errors.New("natsauth: an issuer key and a reviewer are required")
	}
	if o.Account == "" {
		o.Account = "$G"
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = time.Hour
	}
	if o.ReviewTimeout <= 0 {
		o.ReviewTimeout = 3 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Service{o: o, sem: make(chan struct{}, o.Workers)}
	s.ctx, s.stop = context.WithCancel(context.Background())
	sub, err := nc.QueueSubscribe(Subject, Queue, func(m *nats.Msg) {
		select {
		case s.sem <- struct{}{}:
		case <-s.ctx.Done():
			return // stopping: the server times the request out
		}
		go func() {
			defer func() { <-s.sem }()
			s.handle(m)
		}()
	})
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("natsauth: subscribe %s: %w", Subject, err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		s.stop()
		return nil, fmt.Errorf("natsauth: subscribe %s: %w", Subject, err)
	}
	s.sub = sub
	return s, nil
}

// Stop unsubscribes and waits for the reviews in flight.
func (s *Service) Stop() {
	_ = s.sub.Unsubscribe()
	s.stop()
	for range cap(s.sem) {
		s.sem <- struct{}{}
	}
}

func (s *Service) handle(m *nats.Msg) {
	req, err := jwt.DecodeAuthorizationRequestClaims(string(m.Data))
	if err != nil {
		s.o.Logger.Warn("undecodable nats authorization request", "err", err)
		return // without the user key no response can be signed: the server times out
	}
	client := req.ClientInformation.Host
	ujwt, err := s.authorize(req)
	if err != nil {
		s.o.Logger.Warn("nats connection refused", "client", client, "err", err)
	}
	rc := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	rc.Audience = req.Server.ID
	rc.Jwt = ujwt
	if err != nil {
		rc.Error = err.Error()
	}
	tok, eerr := rc.Encode(s.o.Issuer)
	if eerr != nil {
		s.o.Logger.Error("sign nats authorization response", "err", eerr)
		return
	}
	_ = m.Respond([]byte(tok))
}

// authorize reviews the connection's token and returns the user JWT of its node.
func (s *Service) authorize(req *jwt.AuthorizationRequestClaims) (string, error) {
	token := req.ConnectOptions.Token
	if token == "" {
		return "", errors.New("no token: agents connect with their ServiceAccount token (remedy-agent --nats-token-file)")
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.o.ReviewTimeout)
	defer cancel()
	id, err := s.o.Reviewer.Review(ctx, token)
	if err != nil {
		return "", err
	}
	if err := bus.CheckNode(id.Node); err != nil {
		return "", err
	}
	now := s.o.Now()
	exp := now.Add(s.o.MaxTTL)
	if !id.Expires.IsZero() && id.Expires.Before(exp) {
		exp = id.Expires
	}
	if !exp.After(now) {
		return "", errors.New("token expired")
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = id.Node
	uc.Audience = s.o.Account
	uc.Expires = exp.Unix()
	uc.Permissions = NodePermissions(id.Node)
	ujwt, err := uc.Encode(s.o.Issuer)
	if err != nil {
		return "", fmt.Errorf("sign user: %w", err)
	}
	s.o.Logger.Info("nats agent authorized", "node", id.Node, "pod", id.Namespace+"/"+id.Pod, "client", req.ClientInformation.Host, "expires", exp.UTC().Format(time.RFC3339))
	return ujwt, nil
}

// NodePermissions is what a node's agent may do: subscribe to its node's actions and
// its own replies (bus.AgentInboxPrefix); create, pull and (to restart it after a stall) delete only its own
// durable consumer agent-<node> with its own filter subject; ack only that consumer's
// messages; publish only its node's signals and results. <node> is signal.NodeToken.
func NodePermissions(node string) jwt.Permissions {
	t := signal.NodeToken(node)
	cons := bus.StreamActions + "." + bus.AgentConsumer(node)
	var p jwt.Permissions
	p.Pub.Allow.Add(
		bus.SignalsPrefix+"."+t+".>",
		bus.ResultSubject(node),
		bus.RunCheckSubject(node),  // may this action still run? (request/reply)
		bus.HeartbeatSubject(node), // alive
		"$JS.API.CONSUMER.CREATE."+cons+"."+bus.ActionSubject(node),
		"$JS.API.CONSUMER.INFO."+cons,
		"$JS.API.CONSUMER.DELETE."+cons,
		"$JS.API.CONSUMER.MSG.NEXT."+cons,
		"$JS.ACK."+cons+".>",
	)
	p.Sub.Allow.Add(bus.ActionSubject(node), bus.AgentInboxPrefix(node)+".>")
	return p
}
