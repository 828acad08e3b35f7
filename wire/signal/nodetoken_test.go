package signal

import (
	"errors"
	"testing"
)

func TestNodeToken(t *testing.T) {
	for _, tc := range []struct{ node, tok string }{
		// Names that worked before the encoding was injective keep their tokens.
		{"node-1", "node-1"},
		{"Node1", "Node1"},
		{"ip-10-0-0-1.ec2.internal", "ip-10-0-0-1_ec2_internal"},
		{"a.b", "a_b"},
		// The rest are escaped behind a leading '_'.
		{"a_b", "_a_5fb"},
		{"a.b_c", "_a_2eb_5fc"},
		{"_a", "__5fa"},
		{"-a", "_-a"},
		{".a", "__2ea"},
		{"a b", "_a_20b"},
		{"a*>", "_a_2a_3e"},
		{"é", "__c3_a9"},
		{"", "_"},
	} {
		if got := NodeToken(tc.node); got != tc.tok {
			t.Errorf("NodeToken(%q) = %q, want %q", tc.node, got, tc.tok)
		}
		if got, err := ParseNodeToken(tc.tok); err != nil || got != tc.node {
			t.Errorf("ParseNodeToken(%q) = %q, %v; want %q", tc.tok, got, err, tc.node)
		}
	}
	if NodeToken("a.b") == NodeToken("a_b") {
		t.Error("a.b and a_b share a token")
	}
}

func TestParseNodeTokenRefusesOtherSpellings(t *testing.T) {
	for _, tok := range []string{
		"_abc",   // abc is spelt abc
		"_a_2Eb", // upper-case hex
		"_a_2",   // short escape
		"_a_",    // bare escape
		"_a_zzb", // not hex
		"_a_2db", // '-' is spelt as itself
		"-a",     // escaped names start with '_'
		"a.b",    // '.' never appears in a token
		"a b",    // nor a space
	} {
		if node, err := ParseNodeToken(tok); !errors.Is(err, ErrBadNodeToken) {
			t.Errorf("ParseNodeToken(%q) = %q, %v; want ErrBadNodeToken", tok, node, err)
		}
	}
}

// validToken: what NATS accepts as one subject token and as a JetStream consumer name,
// restricted further to the characters NATS recommends.
func validToken(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// FuzzNodeToken: every name's token is a valid subject token and consumer name and
// decodes back to the name (so no two names share a token), and every token
// ParseNodeToken accepts is the one its name encodes to.
func FuzzNodeToken(f *testing.F) {
	for _, s := range []string{"node-1", "a.b", "a_b", "ip-10-0-0-1.ec2.internal", "_", "", "a..b", "a._b", "a_.b", "_a_5fb", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := NodeToken(s)
		if !validToken(tok) {
			t.Fatalf("NodeToken(%q) = %q: not a valid token", s, tok)
		}
		if back, err := ParseNodeToken(tok); err != nil || back != s {
			t.Fatalf("ParseNodeToken(NodeToken(%q)) = %q, %v", s, back, err)
		}
		if node, err := ParseNodeToken(s); err == nil && NodeToken(node) != s {
			t.Fatalf("ParseNodeToken(%q) = %q, whose token is %q", s, node, NodeToken(node))
		}
	})
}
