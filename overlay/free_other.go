//go:build !unix

package overlay

import "errors"

// freeBytes is not measured here: a RAM-backed directory is not chosen.
func freeBytes(dir string) (int64, error) {
	return 0, errors.New("free space is not measured on this system")
}
