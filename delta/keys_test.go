package delta

import "github.com/dvpc/dvpc/image"

// key is the store's key file, as a PC that unlocked it trusts it.
func (s *testStore) key() *image.KeyFile { return s.repo.KeyFile() }
