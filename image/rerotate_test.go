package image

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestPassphraseAfterCodeRotates: the PC where a recovery code unlocked a
// writable store made the new epoch and knows its keys. The owner's next
// passphrase unlock of a writable store starts another epoch, so that PC
// reads nothing written afterwards, and the unlock after that rotates no
// more.
func TestPassphraseAfterCodeRotates(t *testing.T) {
	ctx := context.Background()
	lay, codes := newKeyedLayout(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "a.txt"), []byte("one\n"))

	// The strange PC: the code rotates to epoch 1, whose keys it keeps.
	strange, info, err := Open(ctx, lay, []byte(codes[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !info.Retired || strange.Keys().Epoch() != 1 {
		t.Fatalf("code use: %+v, epoch %d", info, strange.Keys().Epoch())
	}
	strangeKeys := strange.Keys()
	strange.Close()

	// The owner, at home, with the passphrase.
	own, info, err := Open(ctx, lay, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if !info.Rerotated || own.Keys().Epoch() != 2 {
		t.Fatalf("passphrase after a code: %+v, epoch %d, want a new epoch 2", info, own.Keys().Epoch())
	}
	writeFile(t, filepath.Join(home, "b.txt"), []byte("written at home\n"))
	s, _ := mustSnapshot(t, own, home, SnapshotOptions{})
	own.Close()
	if _, err := strangeKeys.openMeta(configBlob(t, lay, s), []byte("dvpc v1 snapshot config")); !errors.Is(err, ErrSeal) {
		t.Fatalf("the strange PC's keys opened a snapshot written after the owner's unlock: %v", err)
	}

	// The next unlock is an ordinary one.
	again, info, err := Open(ctx, lay, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if info.Rerotated || again.Keys().Epoch() != 2 {
		t.Fatalf("second passphrase unlock: %+v, epoch %d, want epoch 2 unchanged", info, again.Keys().Epoch())
	}
	if err := again.LoadIndex(ctx, s); err != nil {
		t.Fatalf("the owner cannot read what they wrote: %v", err)
	}
}
