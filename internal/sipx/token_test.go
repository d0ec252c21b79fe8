package sipx

import (
	"fmt"
	"regexp"
	"testing"
)

func TestIsToken(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"X-Custom-Header", true},
		{"P-Asserted-Identity", true},
		{"user-busy", true},
		{"a.b!c%d*e_f+g`h'i~j", true},
		{"0", true},
		{"", false}, // 1*(...): a token is never empty
		{"two words", false},
		{"name:", false},
		{"x\r\nVia: evil", false},
		{`"quoted"`, false},
		{"semi;colon", false},
		{"a/b", false},
		{"a=b", false},
		{"<uri>", false},
		{"tab\t", false},
		{"ümlaut", false},
	} {
		t.Run(tc.s, func(t *testing.T) {
			if got := IsToken(tc.s); got != tc.want {
				t.Fatalf("IsToken(%q) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}

// tokenRE is RFC 3261 §25.1's token rule written as a regular expression, the oracle for the fuzz
// target.
var tokenRE = regexp.MustCompile("^[A-Za-z0-9.!%*_+`'~-]+$")

func FuzzIsToken(f *testing.F) {
	for _, s := range []string{"", "INVITE", "X-Header", "a b", "~`'", "\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsToken(s), tokenRE.MatchString(s); got != want {
			t.Fatalf("IsToken(%q) = %v, the RFC 3261 grammar says %v", s, got, want)
		}
	})
}

func ExampleIsToken() {
	fmt.Println(IsToken("P-Asserted-Identity"), IsToken("Bad Header"))
	// Output: true false
}
