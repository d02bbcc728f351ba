//go:build !linux

package main

// inRAM is false where dvpc cannot tell a memory file system: the home is
// not put in RAM.
func inRAM(string) bool { return false }

func ownPrivateDir(string) bool { return false }
