//go:build !unix

package media

// openNonblock is 0 where file systems hold no FIFOs.
const openNonblock = 0
