package engine

import (
	"context"
	"time"

	"github.com/remedyhq/remedy/executors"
)

// ExportDispatch runs dispatch with the clock set to now.
func ExportDispatch(e *Engine, now time.Time) func(context.Context, executors.Request) {
	return func(ctx context.Context, r executors.Request) {
		e.o.Now = func() time.Time { return now }
		e.dispatch(ctx, r, dispatchOptions{})
	}
}

// ExportRedispatchStale runs the redispatch pass with the clock set to now.
func ExportRedispatchStale(e *Engine, now time.Time) func(context.Context) {
	return func(ctx context.Context) {
		e.o.Now = func() time.Time { return now }
		e.redispatchStale(ctx)
	}
}

// ExportStorm sets how many Submit calls wait for a commit, and returns yieldToIntake.
func ExportStorm(e *Engine, waiting int32) func() (release func()) {
	e.intake.Store(waiting)
	return e.yieldToIntake
}
