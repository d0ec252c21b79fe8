package admin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pbxkit/pbxkit/internal/admin"
	"github.com/pbxkit/pbxkit/pbx"
)

// every endpoint of the contract, with a path that exists.
var endpoints = []struct{ method, path string }{
	{"GET", "/api/extensions"},
	{"POST", "/api/extensions"},
	{"GET", "/api/extensions/100"},
	{"PATCH", "/api/extensions/100"},
	{"DELETE", "/api/extensions/100"},
	{"GET", "/api/registrations"},
	{"GET", "/api/calls"},
	{"DELETE", "/api/calls/abc"},
	{"POST", "/api/calls/abc/recording"},
	{"DELETE", "/api/calls/abc/recording"},
	{"GET", "/api/cdrs"},
	{"GET", "/api/queues"},
	{"POST", "/api/queues/support/agents/100/pause"},
	{"POST", "/api/queues/support/agents/100/unpause"},
	{"GET", "/api/conferences"},
	{"POST", "/api/conferences/sales/participants/1/mute"},
	{"POST", "/api/conferences/sales/participants/1/unmute"},
	{"DELETE", "/api/conferences/sales/participants/1"},
	{"GET", "/api/bans"},
	{"DELETE", "/api/bans/192.0.2.7"},
	{"GET", "/api/voicemail"},
	{"GET", "/api/voicemail/100/1/audio"},
	{"PATCH", "/api/voicemail/100/1"},
	{"DELETE", "/api/voicemail/100/1"},
	{"POST", "/api/dialplan/reload"},
	{"GET", "/api/events"},
	{"GET", "/api/openapi.json"},
}

// TestUnauthorized: every endpoint answers 401 with a JSON error and a Bearer challenge without
// the token, with a wrong one, and with another scheme.
func TestUnauthorized(t *testing.T) {
	e := start(t, pbx.Config{})
	for _, ep := range endpoints {
		for _, auth := range []string{"", "Bearer wrong-token-0123456789abcdef", "Basic " + testToken, "Bearer ", "Bearer " + testToken + "x"} {
			code, body := e.doAuth(t, ep.method, ep.path, "", auth)
			if code != 401 || !strings.Contains(errorOf(t, body), "token") {
				t.Errorf("%s %s with %q: %d %s", ep.method, ep.path, auth, code, body)
			}
		}
	}
	// The scheme is case-insensitive (RFC 6750 §2.1).
	if code, _ := e.doAuth(t, "GET", "/api/extensions", "", "bearer "+testToken); code != 200 {
		t.Fatalf("lower-case scheme: %d", code)
	}
}

// TestExtensionsCRUD: add, list, show, change, remove; the password is write-only and works.
func TestExtensionsCRUD(t *testing.T) {
	e := start(t, pbx.Config{})
	code, body := e.do(t, "POST", "/api/extensions", `{"number":"100","password":"s3cret-100","name":"Alice","forward_busy":"101"}`)
	if code != 201 || strings.Contains(body, "s3cret") || strings.Contains(body, "ha1") {
		t.Fatalf("create: %d %s", code, body)
	}
	var got struct {
		Number, Name string
		Enabled      bool
	}
	decode(t, body, &got)
	if got.Number != "100" || got.Name != "Alice" || !got.Enabled {
		t.Fatalf("created: %+v", got)
	}
	x, err := e.store.Extension(context.Background(), "100")
	if err != nil || !x.CheckPassword("s3cret-100") || x.Realm != "pbx.test" {
		t.Fatalf("stored: %+v %v", x, err)
	}
	if code, body := e.do(t, "GET", "/api/extensions", ""); code != 200 || !strings.Contains(body, `"number": "100"`) || strings.Contains(body, "password") {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body := e.do(t, "GET", "/api/extensions/100", ""); code != 200 || !strings.Contains(body, `"name": "Alice"`) {
		t.Fatalf("show: %d %s", code, body)
	}
	code, body = e.do(t, "PATCH", "/api/extensions/100", `{"name":"Alice B","dnd":true,"password":"n3w-secret"}`)
	if code != 200 || !strings.Contains(body, `"dnd": true`) || !strings.Contains(body, `"Alice B"`) || !strings.Contains(body, `"forward_busy": "101"`) {
		t.Fatalf("patch: %d %s", code, body)
	}
	if x, _ := e.store.Extension(context.Background(), "100"); !x.CheckPassword("n3w-secret") {
		t.Fatal("the new password does not check")
	}
	if code, _ := e.do(t, "DELETE", "/api/extensions/100", ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, body := e.do(t, "GET", "/api/extensions/100", ""); code != 404 {
		t.Fatalf("after delete: %d %s", code, body)
	}
}

// TestExtensionsBadInput: each bad request gets its status and a JSON error.
func TestExtensionsBadInput(t *testing.T) {
	e := start(t, pbx.Config{})
	e.addExt(t, "100")
	big := `{"number":"101","password":"secret-101","name":"` + strings.Repeat("x", 5000) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"malformed JSON", "POST", "/api/extensions", `{"number":"101",`, 400},
		{"not an object", "POST", "/api/extensions", `[1,2]`, 400},
		{"two values", "POST", "/api/extensions", `{"number":"101","password":"secret-101"} {}`, 400},
		{"unknown field", "POST", "/api/extensions", `{"number":"101","password":"secret-101","passwd":"x"}`, 400},
		{"wrong type", "POST", "/api/extensions", `{"number":101,"password":"secret-101"}`, 400},
		{"empty body", "POST", "/api/extensions", ``, 400},
		{"duplicate", "POST", "/api/extensions", `{"number":"100","password":"secret-100"}`, 409},
		{"no password", "POST", "/api/extensions", `{"number":"101"}`, 422},
		{"short password", "POST", "/api/extensions", `{"number":"101","password":"abc"}`, 422},
		{"password is the number", "POST", "/api/extensions", `{"number":"101234","password":"101234"}`, 422},
		{"bad number", "POST", "/api/extensions", `{"number":"10 1","password":"secret-101"}`, 422},
		{"bad forward", "POST", "/api/extensions", `{"number":"101","password":"secret-101","forward_always":"a b"}`, 422},
		{"bad ring timeout", "PATCH", "/api/extensions/100", `{"ring_timeout":9999}`, 422},
		{"renumber", "PATCH", "/api/extensions/100", `{"number":"102"}`, 422},
		{"patch unknown", "PATCH", "/api/extensions/999", `{"name":"x"}`, 404},
		{"patch malformed", "PATCH", "/api/extensions/100", `{"name":`, 400},
		{"get unknown", "GET", "/api/extensions/999", ``, 404},
		{"delete unknown", "DELETE", "/api/extensions/999", ``, 404},
		{"oversized body", "POST", "/api/extensions", big, 413},
		{"oversized patch", "PATCH", "/api/extensions/100", big, 413},
		{"unknown endpoint", "GET", "/api/nothing", ``, 404},
		{"wrong method", "PUT", "/api/extensions/100", `{}`, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, tc.method, tc.path, tc.body)
			if code != tc.want {
				t.Fatalf("%d %s, want %d", code, body, tc.want)
			}
			errorOf(t, body)
		})
	}
	// A body that says it is not JSON.
	code, body := e.doRaw(t, "POST", "/api/extensions", "number=101", "application/x-www-form-urlencoded")
	if code != 415 {
		t.Fatalf("form body: %d %s", code, body)
	}
	// Nothing above changed extension 100 or added one.
	if code, body := e.do(t, "GET", "/api/extensions", ""); code != 200 || strings.Count(body, `"number"`) != 1 {
		t.Fatalf("after the bad requests: %s", body)
	}
}

// TestOpenAPI: the description is JSON and names every endpoint with its method.
func TestOpenAPI(t *testing.T) {
	e := start(t, pbx.Config{})
	code, body := e.do(t, "GET", "/api/openapi.json", "")
	if code != 200 {
		t.Fatalf("%d", code)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	decode(t, body, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	for _, ep := range admin.Endpoints() {
		if _, ok := doc.Paths[ep[1]][strings.ToLower(ep[0])]; !ok {
			t.Errorf("%s %s is not described", ep[0], ep[1])
		}
	}
	if n := len(admin.Endpoints()); n != len(endpoints) {
		t.Errorf("the server has %d routes, the test knows %d", n, len(endpoints))
	}
}
