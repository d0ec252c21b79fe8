package admin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pbxkit/pbxkit/pbx"
)

// TestExtensionVoicemailFields: POST and PATCH switch the mailbox on and set its PIN, which is
// stored hashed and never shown (only whether one is set); a bad PIN is 422 and changes nothing.
func TestExtensionVoicemailFields(t *testing.T) {
	e := start(t, pbx.Config{})
	code, body := e.do(t, "POST", "/api/extensions", `{"number":"100","password":"s3cret-100","voicemail":true,"vm_pin":"2468"}`)
	if code != 201 || !strings.Contains(body, `"voicemail": true`) || !strings.Contains(body, `"vm_pin_set": true`) || strings.Contains(body, "2468") {
		t.Fatalf("create: %d %s", code, body)
	}
	x, err := e.store.Extension(context.Background(), "100")
	if err != nil || !x.Voicemail || !x.CheckPIN("2468") {
		t.Fatalf("stored: %+v %v", x, err)
	}
	for _, bad := range []string{`{"vm_pin":"12"}`, `{"vm_pin":"12ab"}`, `{"vm_pin":1234}`} {
		if code, body := e.do(t, "PATCH", "/api/extensions/100", bad); code != 422 && code != 400 {
			t.Fatalf("PATCH %s: %d %s", bad, code, body)
		}
	}
	if x, _ := e.store.Extension(context.Background(), "100"); !x.CheckPIN("2468") {
		t.Fatal("a refused PIN changed the stored one")
	}
	code, body = e.do(t, "PATCH", "/api/extensions/100", `{"voicemail":false,"vm_pin":""}`)
	if code != 200 || !strings.Contains(body, `"voicemail": false`) || !strings.Contains(body, `"vm_pin_set": false`) {
		t.Fatalf("patch: %d %s", code, body)
	}
	if x, _ := e.store.Extension(context.Background(), "100"); x.Voicemail || x.HasPIN() {
		t.Fatalf("after patch: %+v", x)
	}
}
