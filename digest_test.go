package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDigestIsSHA256 proves that the content digests are SHA-256: the same
// as crypto/sha256's for every length around the block and padding edges,
// written whole or in pieces, and for the standard's own examples.
func TestDigestIsSHA256(t *testing.T) {
	known := []struct{ in, want string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	}
	for _, k := range known {
		if got := sum256([]byte(k.in)); hex.EncodeToString(got[:]) != k.want {
			t.Errorf("sum256(%q) = %x, want %s", k.in, got, k.want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1<<16+300)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for n := 0; n <= len(data); n += 1 + n/8 {
		want := sha256.Sum256(data[:n])
		if got := sum256(data[:n]); got != digest(want) {
			t.Fatalf("sum256 of %d bytes = %x, want %x", n, got, want)
		}
		h := newHasher()
		for rest := data[:n]; len(rest) > 0; {
			k := min(len(rest), 1+r.IntN(130))
			h.Write(rest[:k])
			rest = rest[k:]
		}
		if got := h.sum(); got != digest(want) {
			t.Fatalf("sum of %d bytes written in pieces = %x, want %x", n, got, want)
		}
	}
}

// mustContents hashes paths, failing the test if that lacks resources.
func mustContents(t *testing.T, paths []string) content {
	t.Helper()
	c, _, err := contents(osFS{}, snapshot(osFS{}, paths))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestChangedPaths proves that a watched path counts as changed when it
// appears or its bytes differ from those the child runs with, not when they
// are the same, and that a path that vanished is no change and keeps its
// old content, so that only its return with other bytes counts.
func TestChangedPaths(t *testing.T) {
	a, b := digest{1}, digest{2}
	tests := []struct {
		name    string
		running content
		now     content
		changed []string
		next    content
	}{
		{"same bytes", content{"/x": a}, content{"/x": a}, nil, content{"/x": a}},
		{"new bytes", content{"/x": a}, content{"/x": b}, []string{"/x"}, content{"/x": b}},
		{"vanished keeps old", content{"/x": a}, content{}, nil, content{"/x": a}},
		{"appeared", content{}, content{"/x": a}, []string{"/x"}, content{"/x": a}},
		{"still missing", content{}, content{}, nil, content{}},
	}
	for _, tc := range tests {
		changed, next := changedPaths([]string{"/x"}, tc.running, tc.now)
		if !slices.Equal(changed, tc.changed) || fmt.Sprint(next) != fmt.Sprint(tc.next) {
			t.Errorf("%s: changedPaths = %q, %v; want %q, %v", tc.name, changed, next, tc.changed, tc.next)
		}
	}
}
