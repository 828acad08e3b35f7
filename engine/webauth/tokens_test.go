package webauth

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadTokens(t *testing.T) {
	tk, err := LoadTokens("testdata/approvers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := tk.Lookup("bob-token-0123456789ab"); !ok || id != (Identity{Name: "bob", Role: Approver}) {
		t.Errorf("lookup = %v %v", id, ok)
	}
	if _, ok := tk.Lookup("bob-token-0123456789a"); ok {
		t.Error("a prefix of a token matched")
	}
	if _, ok := tk.Lookup(""); ok {
		t.Error("empty token matched")
	}
	if s := tk.String(); strings.Contains(s, "token-") || s != "Tokens[alice(approver)=<hidden> bob(approver)=<hidden> carol(viewer)=<hidden> dave(admin)=<hidden>]" {
		t.Errorf("String() = %s", s)
	}
}

func TestLoadTokensErrors(t *testing.T) {
	want := map[string]string{
		"unknown-field.yaml":   "approvers config: yaml: unmarshal errors:\n  line 1: field tokenz not found in type webauth.Tokens",
		"short-token.yaml":     "approvers config: tokens[0]: token must be at least 16 characters",
		"duplicate-token.yaml": "approvers config: tokens[1]: token used twice",
		"bad-identity.yaml":    `approvers config: tokens[0]: invalid identity "a b"`,
		"bad-role.yaml":        `approvers config: tokens[0]: role must be viewer, approver or admin, got "root"`,
	}
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) != len(want) {
		t.Fatalf("%d fixtures, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		_, err := LoadTokens(f)
		if err == nil || !errors.Is(err, ErrTokens) || err.Error() != want[filepath.Base(f)] {
			t.Errorf("%s: %v\nwant %s", f, err, want[filepath.Base(f)])
		}
	}
}

func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("tokens: [{token: aaaaaaaaaaaaaaaa, identity: a, role: viewer}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := ParseTokens(b)
		if err == nil && strings.Contains(tk.String(), "aaaaaaaaaaaaaaaa") {
			t.Fatal("String() shows a token")
		}
	})
}
