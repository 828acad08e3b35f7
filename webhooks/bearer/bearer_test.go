package bearer

import (
	"net/http/httptest"
	"testing"
)

func TestToken(t *testing.T) {
	tests := []struct {
		header string
		want   string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"  Bearer   abc  ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "", false},
		{"Bearerabc", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := Token(tt.header)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Token(%q) = %q %v, want %q %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestMatches(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "bearer s3cret")
	if !Matches(r, "s3cret") {
		t.Error("lower-case scheme refused")
	}
	if Matches(r, "s3cre") || Matches(r, "") {
		t.Error("a wrong or empty token matched")
	}
}

func FuzzToken(f *testing.F) {
	f.Add("Bearer abc")
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := Token(h)
		if ok && (tok == "" || tok[0] == ' ' || tok[len(tok)-1] == ' ') {
			t.Fatalf("Token(%q) = %q", h, tok)
		}
	})
}
