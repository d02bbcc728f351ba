//go:build linux

package main

import (
	"strings"
	"testing"
)

func TestCheckPush(t *testing.T) {
	ok := `[{"mirror":"r2","url":"a/b","blobs_uploaded":3,"bytes_uploaded":10,"blobs_skipped":0,"manifests":1,"error":""},
		{"mirror":"r3","url":"c/d","blobs_uploaded":3,"bytes_uploaded":10,"blobs_skipped":0,"manifests":1,"error":""}]`
	for _, c := range []struct {
		out  string
		want int
		why  string
	}{
		{ok, 2, ""},
		{ok, 4, "2 mirrors, want 4"},
		{`[{"mirror":"r1","url":"a/b","error":"connection refused"}]`, 1, "mirror r1: connection refused"},
		{`{"mirror":"r1"}`, 1, "push --json"},
		{``, 1, "push --json"},
	} {
		if got := checkPush([]byte(c.out), c.want); (c.why == "") != (got == "") || !strings.Contains(got, c.why) {
			t.Errorf("checkPush(%s, %d) = %q, want %q", c.out, c.want, got, c.why)
		}
	}
}

func TestCheckPull(t *testing.T) {
	for _, c := range []struct{ out, why string }{
		{`{"snapshots":["abc"],"blobs_fetched":4,"bytes_fetched":100,"blobs_present":9,"bad_mirrors":[]}`, ""},
		{`{"snapshots":["abc"],"blobs_fetched":4,"bytes_fetched":100,"blobs_present":9,"bad_mirrors":null}`, ""},
		{`{"snapshots":[],"blobs_fetched":0,"bytes_fetched":0,"blobs_present":0,"bad_mirrors":[]}`, "pulled 0 snapshots"},
		{`{"snapshots":["abc"],"bad_mirrors":["127.0.0.1:1/x"]}`, "bad mirrors"},
		{`pulled`, "pull --json"},
	} {
		if got := checkPull([]byte(c.out)); (c.why == "") != (got == "") || !strings.Contains(got, c.why) {
			t.Errorf("checkPull(%s) = %q, want %q", c.out, got, c.why)
		}
	}
}

func TestMirrorFigures(t *testing.T) {
	b := &bench{}
	tr := &toolRun{Name: "dvpc", Steps: map[string]*result{
		"incremental": {Report: []byte(`{"id":"x","bytes_new":8388608}`)},
		"pull-week":   {Report: []byte(`{"snapshots":["x"],"bytes_fetched":9437184}`)},
	}}
	if c := incrementalNew(b, tr); !c.ok() || c.v != 8 {
		t.Errorf("new blobs = %+v, want 8 MiB", c)
	}
	if c := quotient(pullWeek, incrementalNew)(b, tr); !c.ok() || c.v != 9.0/8 {
		t.Errorf("pull / new blobs = %+v, want 1.125", c)
	}
	peer := &toolRun{Name: "restic", Steps: map[string]*result{"incremental": {}}}
	if c := quotient(pullWeek, incrementalNew)(b, peer); c.why != "-" {
		t.Errorf("peer pull / new blobs = %+v, want -", c)
	}
	tr.Steps["pull-week"].Error = "exit code 1"
	if c := pullWeek(b, tr); c.why != "failed" {
		t.Errorf("failed pull = %+v, want failed", c)
	}
}
