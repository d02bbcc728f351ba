package image

import "golang.org/x/sys/unix"

// oNoAtime keeps snapshots from touching access times where it is allowed.
const oNoAtime = unix.O_NOATIME
