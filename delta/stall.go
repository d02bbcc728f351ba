package delta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultTimeout is how long a mirror may go without progress (connecting,
// answering, or moving bytes either way) before the request fails and the
// next mirror is asked.
const DefaultTimeout = 30 * time.Second

// ErrStalled means a mirror made no progress within the timeout.
var ErrStalled = errors.New("mirror stalled")

// stallError says how long the mirror was silent; it is [ErrStalled].
type stallError struct{ after time.Duration }

func (e *stallError) Error() string {
	return fmt.Sprintf("no progress for %v: %v", e.after, ErrStalled)
}

func (e *stallError) Unwrap() error { return ErrStalled }

// watchdog cancels a request's context when neither its body nor its
// response body has moved for the timeout. Every read of either resets it.
type watchdog struct {
	timeout time.Duration
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	once    sync.Once
}

// watch returns a context for one request that the watchdog cancels with a
// [stallError] when the request stalls.
func watch(ctx context.Context, timeout time.Duration) (context.Context, *watchdog) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &watchdog{timeout: timeout, cancel: cancel}
	w.timer = time.AfterFunc(timeout, func() { cancel(&stallError{after: timeout}) })
	return ctx, w
}

func (w *watchdog) kick() { w.timer.Reset(w.timeout) }

// stop ends the watch and releases the context.
func (w *watchdog) stop() {
	w.once.Do(func() {
		w.timer.Stop()
		w.cancel(context.Canceled)
	})
}

// cause returns the stall error if the watchdog fired, else err.
func (w *watchdog) cause(ctx context.Context, err error) error {
	var se *stallError
	if c := context.Cause(ctx); errors.As(c, &se) {
		return se
	}
	return err
}

// reader kicks the watchdog on every read of r that moves bytes.
func (w *watchdog) reader(ctx context.Context, r io.Reader) io.Reader {
	return &watchedReader{r: r, w: w, ctx: ctx}
}

type watchedReader struct {
	r   io.Reader
	w   *watchdog
	ctx context.Context
}

func (wr *watchedReader) Read(p []byte) (int, error) {
	n, err := wr.r.Read(p)
	if n > 0 {
		wr.w.kick()
	}
	if err != nil && err != io.EOF {
		err = wr.w.cause(wr.ctx, err)
	}
	return n, err
}

// watchedBody is a response body whose Close ends the watch.
type watchedBody struct {
	io.Reader
	body io.Closer
	w    *watchdog
}

func (b *watchedBody) Close() error {
	err := b.body.Close()
	b.w.stop()
	return err
}
