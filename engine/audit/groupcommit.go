package audit

import (
	"context"
	"sync"
)

// GroupCommitter funnels concurrent Append calls into one writer goroutine that commits
// everything waiting in a single transaction: with one fsync per commit, throughput grows
// with concurrency instead of being capped at the disk's fsync rate.
type GroupCommitter struct {
	commit   func(ctx context.Context, batches [][]Event) ([][]bool, error)
	maxBatch int
	reqs     chan *commitReq
	// bulk holds the appends made under Deferrable contexts: they ride in a commit
	// only beside what is urgent, up to maxBulk events, so that acknowledging intake
	// does not queue behind a backlog of decisions.
	bulk   chan *commitReq
	ctx    context.Context
	cancel context.CancelFunc
	closed chan struct{} // closed once the writer has exited
	wg     sync.WaitGroup
	stop   sync.Once
}

type commitReq struct {
	events []Event
	bulk   bool
	done   chan commitRes
}

type deferrableKey struct{}

// Deferrable marks the appends made with ctx as work that may wait behind urgent
// appends (the engine's decisions, which nobody is waiting to be acknowledged): they
// are committed as durably, but after what is queued without the mark.
func Deferrable(ctx context.Context) context.Context {
	return context.WithValue(ctx, deferrableKey{}, true)
}

func isDeferrable(ctx context.Context) bool {
	v, _ := ctx.Value(deferrableKey{}).(bool)
	return v
}

type commitRes struct {
	inserted []bool
	err      error
}

// NewGroupCommitter starts the writer. commit receives the waiting calls' event lists
// and must write them in one transaction.
func NewGroupCommitter(maxBatch int, commit func(ctx context.Context, batches [][]Event) ([][]bool, error)) *GroupCommitter {
	ctx, cancel := context.WithCancel(context.Background())
	g := &GroupCommitter{commit: commit, maxBatch: maxBatch, reqs: make(chan *commitReq, 4096), bulk: make(chan *commitReq, 4096),
		ctx: ctx, cancel: cancel, closed: make(chan struct{})}
	g.wg.Add(1)
	go g.loop()
	return g
}

// Append queues events and waits for their commit.
func (g *GroupCommitter) Append(ctx context.Context, events []Event) ([]bool, error) {
	if len(events) == 0 {
		return nil, nil
	}
	r := &commitReq{events: events, bulk: isDeferrable(ctx), done: make(chan commitRes, 1)}
	q := g.reqs
	if r.bulk {
		q = g.bulk
	}
	select {
	case q <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-g.ctx.Done():
		return nil, ErrClosed
	}
	// Once queued, the events are committed (or not) whatever ctx does: wait for the
	// outcome, so that an error always means "not written" and a caller that returns
	// has its events visible to the next reader. A commit is bounded by the database.
	select {
	case res := <-r.done:
		return res.inserted, res.err
	case <-g.closed:
		select {
		case res := <-r.done:
			return res.inserted, res.err
		default:
			return nil, ErrClosed
		}
	}
}

func (g *GroupCommitter) loop() {
	defer g.wg.Done()
	for {
		var first *commitReq
		select {
		case first = <-g.reqs:
		case first = <-g.bulk:
		case <-g.ctx.Done():
			g.drain()
			return
		}
		g.flush(g.collect(first))
	}
}

// maxBulk bounds the deferrable events of a commit that also carries urgent ones (and
// four times that, of a commit of deferrable events only: an urgent call arriving
// during it waits for it).
const maxBulk = 256

// collect adds to first what else waits: every urgent call (up to maxBatch events),
// then deferrable ones, fewer when urgent calls are waiting for this commit.
func (g *GroupCommitter) collect(first *commitReq) []*commitReq {
	batch := []*commitReq{first}
	n, bulk := len(first.events), 0
	if first.bulk {
		bulk = n
	}
urgent:
	for n < g.maxBatch {
		select {
		case r := <-g.reqs:
			batch = append(batch, r)
			n += len(r.events)
		default:
			break urgent
		}
	}
	maxB := 4 * maxBulk // a commit of deferrable events only
	if n > bulk {
		maxB = maxBulk
	}
	for n < g.maxBatch && bulk < maxB {
		select {
		case r := <-g.bulk:
			batch = append(batch, r)
			n += len(r.events)
			bulk += len(r.events)
		default:
			return batch
		}
	}
	return batch
}

func (g *GroupCommitter) flush(batch []*commitReq) {
	lists := make([][]Event, len(batch))
	for i, r := range batch {
		lists[i] = r.events
	}
	ins, err := g.commit(context.Background(), lists)
	for i, r := range batch {
		if err != nil {
			r.done <- commitRes{err: err}
			continue
		}
		r.done <- commitRes{inserted: ins[i]}
	}
}

// drain answers the calls still queued at close.
func (g *GroupCommitter) drain() {
	for {
		select {
		case r := <-g.reqs:
			r.done <- commitRes{err: ErrClosed}
		case r := <-g.bulk:
			r.done <- commitRes{err: ErrClosed}
		default:
			return
		}
	}
}

// Close stops the writer after the commit in progress. It reports whether this call
// closed it (false: it was closed already).
func (g *GroupCommitter) Close() bool {
	closed := false
	g.stop.Do(func() {
		g.cancel()
		g.wg.Wait()
		close(g.closed)
		closed = true
	})
	return closed
}
