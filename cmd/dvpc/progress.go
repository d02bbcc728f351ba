package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/media"
)

// startProgress draws a one-line progress display on stderr while long work
// runs, when stderr is a terminal. The returned func stops it. Progress
// counts files for the commands that read or write trees.
func startProgress(w io.Writer, verb string, p *image.Progress) func() {
	return startProgressOf(w, verb, "files", "new", p)
}

// startProgressOf is startProgress with the names of what p counts (items)
// and of its new bytes (fresh): blobs and bytes sent for a push.
func startProgressOf(w io.Writer, verb, items, fresh string, p *image.Progress) func() {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				el := time.Since(start).Seconds()
				b := p.Bytes.Load()
				fmt.Fprintf(w, "\r\033[K%s %d %s, %s (%s/s), %s %s", verb, p.Files.Load(), items,
					humanBytes(b), humanBytes(int64(float64(b)/max(el, 0.001))), humanBytes(p.BytesNew.Load()), fresh)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

func humanBytes(n int64) string { return media.HumanBytes(n) }
