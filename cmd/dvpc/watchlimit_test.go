package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/dvpc/dvpc/overlay"
)

func TestClassifyWatchLimit(t *testing.T) {
	err := fmt.Errorf("watch /home/a/src: 8192 directories watched: %w: %w", overlay.ErrWatchLimit, syscall.ENOSPC)
	code, hint := classify(context.Background(), err, "sync")
	if code != exitError || !strings.Contains(hint, "max_user_watches") {
		t.Errorf("watch limit: exit %d, hint %q", code, hint)
	}
}
