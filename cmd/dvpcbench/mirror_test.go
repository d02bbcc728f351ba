//go:build linux

package main

import (
	"math"
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

func TestPush4Floor(t *testing.T) {
	sec := func(v float64) *float64 { return &v }
	dvpc := &toolRun{Name: "dvpc", Steps: map[string]*result{
		"push-1": {Seconds: 1.2, UserS: 0.1, SysS: 0.05, RegistriesCPU: sec(1.6)},
		"push-4": {Seconds: 4.1, UserS: 0.2, SysS: 0.1, RegistriesCPU: sec(6.5)},
	}}
	b := &bench{cpus: 2, runs: []*toolRun{dvpc, {Name: "restic", Steps: map[string]*result{}}}}
	for _, c := range []struct {
		key, tool string
		want      cell
	}{
		{"registries_cpu_push_1_s", "dvpc", cell{v: 1.6}},
		{"registries_cpu_push_4_s", "dvpc", cell{v: 6.5}},
		{"push_4_floor_s", "dvpc", cell{v: 3.4}},
		{"push_4_floor_vs_1", "dvpc", cell{v: 3.4 / 1.2}},
		{"registries_cpu_push_4_s", "restic", cell{why: "-"}},
		{"push_4_floor_s", "borg", cell{why: "-"}},
	} {
		got := b.value(c.key, c.tool)
		if got.why != c.want.why || math.Abs(got.v-c.want.v) > 1e-9 {
			t.Errorf("%s %s = %+v, want %+v", c.key, c.tool, got, c.want)
		}
	}
	const line = "   3.40 s = 2.8× push to 1 (registries used 6.5 s of CPU and dvpc 0.3 s, on 2 cores)"
	if got := b.push4FloorText(); got != line {
		t.Errorf("floor line = %q, want %q", got, line)
	}
	aim := func() aimResult {
		for _, a := range b.evalAims() {
			if strings.HasPrefix(a.Label, "push to 4 mirrors") {
				return a
			}
		}
		t.Fatal("no push aim")
		return aimResult{}
	}
	const note = "the machine's CPU floor, 3.40 s = 2.8× push to 1, is above the aim"
	if a := aim(); a.Status != "missed" || a.Note != note {
		t.Errorf("push aim = %+v, want missed with note %q", a, note)
	}

	// On 8 CPUs the floor, 0.85 s, is below the bound: a plain miss.
	b.cpus = 8
	if a := aim(); a.Status != "missed" || a.Note != "" {
		t.Errorf("push aim on 8 CPUs = %+v, want missed without note", a)
	}
	// Met: no note.
	dvpc.Steps["push-4"].Seconds = 1.5
	b.cpus = 2
	if a := aim(); a.Status != "met" || a.Note != "" {
		t.Errorf("met push aim = %+v, want met without note", a)
	}

	// A push whose registries' CPU could not be read, and one that failed.
	dvpc.Steps["push-4"].RegistriesCPU = nil
	if c := b.value("push_4_floor_s", "dvpc"); c.why != "failed" {
		t.Errorf("floor without registries' CPU = %+v, want failed", c)
	}
	dvpc.Steps["push-4"] = &result{Error: "exit code 1", RegistriesCPU: sec(1)}
	if got := b.push4FloorText(); got != "failed" {
		t.Errorf("floor line of a failed push = %q", got)
	}
	delete(dvpc.Steps, "push-4")
	if got := b.push4FloorText(); got != "not run" {
		t.Errorf("floor line without push-4 = %q", got)
	}
	if got := (&bench{cpus: 2}).push4FloorText(); got != "not run" {
		t.Errorf("floor line without dvpc = %q", got)
	}
}
