//go:build !linux

package media

import "io/fs"

// devNumber is known on Linux only, where dvpc writes to devices.
func devNumber(fs.FileInfo) (string, bool) { return "", false }
