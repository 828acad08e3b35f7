package audit

import (
	"context"
	"sync"
)

// GroupCommitter funnels concurrent Append calls into one writer goroutine that commits
// everything waiting in a single transaction: with one fsync per commit, throughput grows
// with concurrency instead of being capped at the disk's fsync rate.
type GroupCommitter struct {
	commit   func(ctx context.Context, batches []Batch) ([]Committed, []error, error)
	maxBatch int
	reqs     chan *commitReq
	// bulk holds the Deferred batches: they ride in a commit
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
	b    Batch
	n    int // events and changes: the batch's weight in a commit
	done chan commitRes
}

type commitRes struct {
	c   Committed
	err error
}

// NewGroupCommitter starts the writer. commit receives the waiting calls' batches and
// must write them in one transaction, returning per batch what it wrote or why that
// batch alone was not written (a *Conflict), or an error for the whole transaction.
func NewGroupCommitter(maxBatch int, commit func(ctx context.Context, batches []Batch) ([]Committed, []error, error)) *GroupCommitter {
	ctx, cancel := context.WithCancel(context.Background())
	g := &GroupCommitter{commit: commit, maxBatch: maxBatch, reqs: make(chan *commitReq, 4096), bulk: make(chan *commitReq, 4096),
		ctx: ctx, cancel: cancel, closed: make(chan struct{})}
	g.wg.Add(1)
	go g.loop()
	return g
}

// Commit queues a batch and waits for its commit.
func (g *GroupCommitter) Commit(ctx context.Context, b Batch) (Committed, error) {
	if len(b.Events) == 0 && len(b.Changes) == 0 {
		return Committed{}, nil
	}
	r := &commitReq{b: b, n: len(b.Events) + len(b.Changes), done: make(chan commitRes, 1)}
	q := g.reqs
	if b.Deferred {
		q = g.bulk
	}
	select {
	case q <- r:
	case <-ctx.Done():
		return Committed{}, ctx.Err()
	case <-g.ctx.Done():
		return Committed{}, ErrClosed
	}
	// Once queued, the events are committed (or not) whatever ctx does: wait for the
	// outcome, so that an error always means "not written" and a caller that returns
	// has its events visible to the next reader. A commit is bounded by the database.
	select {
	case res := <-r.done:
		return res.c, res.err
	case <-g.closed:
		select {
		case res := <-r.done:
			return res.c, res.err
		default:
			return Committed{}, ErrClosed
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
	n, bulk := first.n, 0
	if first.b.Deferred {
		bulk = n
	}
urgent:
	for n < g.maxBatch {
		select {
		case r := <-g.reqs:
			batch = append(batch, r)
			n += r.n
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
			n += r.n
			bulk += r.n
		default:
			return batch
		}
	}
	return batch
}

func (g *GroupCommitter) flush(batch []*commitReq) {
	lists := make([]Batch, len(batch))
	for i, r := range batch {
		lists[i] = r.b
	}
	out, errs, err := g.commit(context.Background(), lists)
	for i, r := range batch {
		switch {
		case err != nil:
			r.done <- commitRes{err: err}
		case errs != nil && errs[i] != nil:
			r.done <- commitRes{err: errs[i]}
		default:
			r.done <- commitRes{c: out[i]}
		}
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
