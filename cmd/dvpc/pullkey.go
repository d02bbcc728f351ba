package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
)

// settlePullKey decides which key a store that has none trusts, before
// anything is written to it: among the key blobs the sources offer, the
// one whose signer is signer (a fingerprint, SHA256:...), else the one the
// unlock agent's keys or the person's passphrase or recovery code opens
// (which also picks among several blobs of that signer).
// A blob that does not open is never trusted; the pull names the sources
// that offer another key than the one trusted. The secret typed is kept in g for the unlock that follows
// in the same command, so it is asked once.
func (g *globals) settlePullKey(ctx context.Context, sources []delta.Endpoint, signer string) (*image.KeyFile, error) {
	cands, fails := delta.KeyCandidates(ctx, sources)
	for _, f := range fails {
		fmt.Fprintf(g.stderr, "dvpc: %v\n", f)
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("pull: no source offers a key blob (a %q tag); nothing was written: %w", image.KeysRef, image.ErrNotFound)
	}
	if signer != "" {
		var of []delta.KeyCandidate
		for _, c := range cands {
			if c.KeyFile.Signer() == signer {
				of = append(of, c)
			}
		}
		switch len(of) {
		case 0:
			return nil, fmt.Errorf("pull: no source offers the key of signer %s (%s); nothing was written: %w", signer, describeCandidates(cands), image.ErrNotFound)
		case 1:
			return of[0].KeyFile, nil
		}
		// Blobs of that signer that differ in their wrappers: only one
		// that opens may be kept.
		cands = of
	}
	if ag := g.agent(); ag != nil {
		for _, c := range cands {
			if ag.opens(c.KeyFile) {
				return c.KeyFile, nil
			}
		}
	}
	pass, err := readPassphrase(g.stderr, "Passphrase for the store the mirrors hold: ")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, c := range cands {
		if _, err := c.KeyFile.Unlock(pass); err != nil {
			lastErr = err
			continue
		}
		g.secret = pass
		return c.KeyFile, nil
	}
	clear(pass)
	return nil, fmt.Errorf("pull: the passphrase opens none of the key blobs the sources offer (%s); nothing was written: %w", describeCandidates(cands), lastErr)
}

// describeCandidates lists the key blobs on offer and who offers them.
func describeCandidates(cands []delta.KeyCandidate) string {
	var parts []string
	for _, c := range cands {
		parts = append(parts, fmt.Sprintf("store %s, signer %s, from %s", c.KeyFile.StoreID, c.KeyFile.Signer(), strings.Join(c.Sources, ", ")))
	}
	return strings.Join(parts, "; ")
}

// opens reports whether the agent holds the keys that kf seals: the keys it
// keeps for kf's store ID, checked against kf's signing key.
func (a *agentClient) opens(kf *image.KeyFile) bool {
	if !agentListening(a.sock) {
		return false
	}
	m, _, err := a.call(agentGet, []byte(kf.StoreID))
	if err != nil || m == nil {
		return false
	}
	defer m.wipe()
	if m.op != agentKey || len(m.fields) != 1 {
		return false
	}
	repo, err := image.OpenUnlocked(context.Background(), nil, kf, m.fields[0])
	if err != nil {
		return false
	}
	repo.Close()
	return true
}
