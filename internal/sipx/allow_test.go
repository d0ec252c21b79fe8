package sipx

import (
	"fmt"
	"strings"
	"testing"
)

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   bool
	}{
		{"INVITE", true}, {"ACK", true}, {"CANCEL", true}, {"BYE", true}, {"OPTIONS", true},
		{"REGISTER", true}, {"INFO", true}, {"UPDATE", true}, {"REFER", true}, {"NOTIFY", true},
		{"SUBSCRIBE", true}, {"PRACK", false}, {"MESSAGE", false}, {"PUBLISH", false},
		{"invite", false}, // methods are case-sensitive (RFC 3261 §7.1)
		{"", false}, {"INVITE, ACK", false}, {" INVITE", false}, {"INV", false},
	} {
		t.Run(tc.method, func(t *testing.T) {
			if got := Allowed(tc.method); got != tc.want {
				t.Fatalf("Allowed(%q) = %v, want %v", tc.method, got, tc.want)
			}
		})
	}
}

// TestAllowIsAListOfTokens: the header value parses as RFC 3261's Allow = Method *(COMMA Method)
// with no method twice.
func TestAllowIsAListOfTokens(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range strings.Split(Allow, ", ") {
		if !IsToken(m) || seen[m] {
			t.Fatalf("Allow %q: %q is not a token or appears twice", Allow, m)
		}
		seen[m] = true
	}
}

func ExampleAllowed() {
	fmt.Println(Allowed("REFER"), Allowed("PRACK"))
	// Output: true false
}
