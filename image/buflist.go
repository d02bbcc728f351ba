package image

// bufList keeps up to a fixed number of chunk-sized buffers for reuse.
// Unlike a sync.Pool, the garbage collector never empties it, so a
// snapshot or restore that reuses its buffers allocates almost nothing
// after the first chunks, the collector seldom runs, and the heap stays
// near what is in use instead of growing to twice that between
// collections.
type bufList struct {
	free chan *[]byte
	size int // capacity of new buffers
	full bool
}

func newBufList(keep, size int, full bool) *bufList {
	return &bufList{free: make(chan *[]byte, keep), size: size, full: full}
}

// Get returns a buffer of capacity at least size: of length 0, or of
// length size when the list was made with full set.
func (l *bufList) Get() *[]byte {
	select {
	case b := <-l.free:
		return b
	default:
	}
	n := 0
	if l.full {
		n = l.size
	}
	b := make([]byte, n, l.size)
	return &b
}

// Put keeps b for reuse, or drops it when the list holds enough.
func (l *bufList) Put(b *[]byte) {
	if cap(*b) < l.size {
		return
	}
	if l.full {
		*b = (*b)[:l.size]
	} else {
		*b = (*b)[:0]
	}
	select {
	case l.free <- b:
	default:
	}
}
