package image

import "testing"

func TestBufList(t *testing.T) {
	l := newBufList(2, 1000, false)
	a, b, c := l.Get(), l.Get(), l.Get()
	for _, x := range []*[]byte{a, b, c} {
		if len(*x) != 0 || cap(*x) < 1000 {
			t.Fatalf("len %d cap %d", len(*x), cap(*x))
		}
	}
	*a = append(*a, 1, 2, 3)
	l.Put(a)
	l.Put(b)
	l.Put(c) // over the limit: dropped
	small := make([]byte, 10)
	l.Put(&small) // too small: dropped
	if got := l.Get(); got != a || len(*got) != 0 {
		t.Fatalf("the first buffer kept should come back emptied")
	}
	if got := l.Get(); got != b {
		t.Fatal("the second buffer kept should come back")
	}
	if got := l.Get(); got == c || got == &small {
		t.Fatal("a dropped buffer came back")
	}
	full := newBufList(1, 64, true)
	f := full.Get()
	if len(*f) != 64 {
		t.Fatalf("a full list's buffer has length %d", len(*f))
	}
	*f = (*f)[:3]
	full.Put(f)
	if g := full.Get(); g != f || len(*g) != 64 {
		t.Fatalf("a full list's buffer comes back at full length, got %d", len(*g))
	}
}
