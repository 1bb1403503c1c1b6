package main

import "testing"

func TestSizeList(t *testing.T) {
	var v []int
	l := &sizeList{&v}
	if err := l.Set("200, 1000,5000"); err != nil || l.String() != "200,1000,5000" {
		t.Errorf("Set(200, 1000,5000) = %v, %q", err, l.String())
	}
	if err := l.Set(""); err != nil || len(v) != 0 {
		t.Errorf("Set(\"\") = %v, %v; want no sizes", err, v)
	}
	for _, bad := range []string{"x", "0", "-5", "10,abc"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}
