//go:build !unix

package media

import "os"

// lockKey is a no-op where Windows' own sharing rules guard the file.
func lockKey(*os.File) error { return nil }
