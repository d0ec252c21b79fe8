package pbx_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// TestDefaultRouting: with no dialplan, an INVITE's Request-URI user is an extension, and the
// extension's state decides the answer.
func TestDefaultRouting(t *testing.T) {
	tp := startPBX(t, pbx.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	ctx := context.Background()
	for _, n := range []string{"300", "301", "302"} {
		tp.addExt(t, n, "pw"+n)
	}
	off, on := false, true
	if _, err := tp.store.UpdateExtension(ctx, "301", store.ExtensionPatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.store.UpdateExtension(ctx, "302", store.ExtensionPatch{DND: &on}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, tp.addr)
	for _, tc := range []struct {
		uri     string
		code    int
		reason  string
		warning string
	}{
		{"sip:999@pbx.test", 404, "Not Found", "no such extension"},
		{"sip:pbx.test", 404, "Not Found", "names no extension"},
		{"sip:301@pbx.test", 410, "Gone", "extension 301 is disabled"},
		{"sip:302@pbx.test", 486, "Busy Here", "do not disturb"},
		{"sip:300@pbx.test", 480, "Temporarily Unavailable", "extension 300 is not registered"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			res := c.Do(c.Build(reqSpec{Method: "INVITE", URI: tc.uri, From: "100", To: "x", Headers: []string{"Content-Type: application/sdp"}, Body: sdpBody}))
			if res.StatusCode != tc.code || res.Reason != tc.reason || !strings.Contains(header(res, "Warning"), tc.warning) {
				t.Fatalf("got %d %s (%s), want %d %s (%s)", res.StatusCode, res.Reason, header(res, "Warning"), tc.code, tc.reason, tc.warning)
			}
		})
	}
}
