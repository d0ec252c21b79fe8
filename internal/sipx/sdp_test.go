package sipx

import (
	"fmt"
	"testing"
)

func TestIsSDP(t *testing.T) {
	for _, tc := range []struct {
		contentType string
		want        bool
	}{
		{"application/sdp", true},
		{"Application/SDP", true},
		{"application/sdp;charset=utf-8", true},
		{"  application/sdp ; version=1", true},
		{"application/sdpx", false},
		{"application/dtmf-relay", false},
		{"multipart/mixed;boundary=x", false},
		{"text/plain;application/sdp", false},
		{"", false},
	} {
		t.Run(tc.contentType, func(t *testing.T) {
			if got := IsSDP(tc.contentType); got != tc.want {
				t.Fatalf("IsSDP(%q) = %v, want %v", tc.contentType, got, tc.want)
			}
		})
	}
}

func ExampleIsSDP() {
	fmt.Println(IsSDP("Application/SDP; charset=utf-8"), IsSDP("application/dtmf-relay"))
	// Output: true false
}
