package main

import (
	"bytes"
	"debug/elf"
	"io"
	"os"
)

// needsOwnRoot reports whether an app's entrypoint, at path on this PC,
// needs the app's own root file system to run: a script (its interpreter
// is a path inside the image) or a dynamically linked program (its loader
// and libraries are). A static program runs as it is.
func needsOwnRoot(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil {
		return false
	}
	if bytes.HasPrefix(head, []byte("#!")) {
		return true
	}
	if !bytes.Equal(head, []byte(elf.ELFMAG)) {
		return false
	}
	e, err := elf.NewFile(f)
	if err != nil {
		return false
	}
	defer e.Close()
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}
