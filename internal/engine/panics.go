package engine

import (
	"errors"
	"runtime/debug"
)

// A panic in the plugin process ends it, and with plugin multiplexing every mount of the
// plugin with it. So every entry point recovers: requests (HandleRequest, which also runs
// Vault's periodic rollbacks), scheduled jobs and token fetches. The request fails with a
// 500, the job is retried at its next due time, and the log says where, with a stack but
// never the panic's value, which may hold request data.

// PanicMessage is what a recovered panic becomes.
const PanicMessage = "internal error in the Auth0 secrets engine (a bug: it is logged at Error with a stack trace; please report it)"

var errPanic = errors.New(PanicMessage)

// recoverInto, deferred, turns a panic of the calling goroutine into *errp.
func (b *Engine) recoverInto(where string, errp *error) {
	if recover() != nil {
		b.LogPanic(where)
		*errp = errPanic
	}
}

// guard runs fn, recovering a panic: for goroutines, which nothing else would catch.
func (b *Engine) guard(where string, fn func()) {
	defer func() {
		if recover() != nil {
			b.LogPanic(where)
		}
	}()
	fn()
}

// recoverJob, deferred by a scheduled job, recovers its panic: the job is due again at its
// next attempt.
func (b *Engine) recoverJob() {
	if recover() != nil {
		b.LogPanic("scheduled job")
	}
}

func (b *Engine) LogPanic(where string, args ...any) {
	args = append([]any{"where", where}, args...)
	b.logger().Error("recovered from a panic; the plugin keeps serving", append(args, "stack", string(debug.Stack()))...)
}
