package admin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pbxkit/pbxkit/internal/callmedia"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
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

// addVoicemail leaves a message of seconds of tone in mailbox, its WAV file where the PBX keeps
// them (DataDir/voicemail/MAILBOX), and returns it with the file's bytes.
func (e *env) addVoicemail(t *testing.T, mailbox, caller, name string, seconds int) (*store.VoicemailMessage, []byte) {
	t.Helper()
	dir := filepath.Join(e.pbx.Config().DataDir, "voicemail", mailbox)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "msg-*.wav")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := callmedia.WriteWAVFile(f.Name(), audiotest.Tone(440, 8000, 0, seconds*8000)); err != nil {
		t.Fatal(err)
	}
	wav, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	m := &store.VoicemailMessage{Mailbox: mailbox, Caller: caller, CallerName: name, CallID: "call-" + caller,
		Path: f.Name(), Seconds: seconds}
	if err := e.store.AddVoicemail(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m, wav
}

// vmView is a message as GET /api/voicemail lists it.
type vmView struct {
	ID          int64     `json:"id"`
	Mailbox     string    `json:"mailbox"`
	Caller      string    `json:"caller"`
	CallerName  string    `json:"caller_name"`
	Folder      string    `json:"folder"`
	DurationSec int       `json:"duration_sec"`
	CreatedAt   time.Time `json:"created_at"`
	AudioURL    string    `json:"audio_url"`
}

// listVoicemail lists the messages the query selects, failing unless the answer is 200.
func (e *env) listVoicemail(t *testing.T, query string) []vmView {
	t.Helper()
	code, body := e.do(t, "GET", "/api/voicemail"+query, "")
	if code != 200 {
		t.Fatalf("GET /api/voicemail%s: %d %s", query, code, body)
	}
	var out []vmView
	decode(t, body, &out)
	return out
}

func vmIDs(msgs []vmView) string {
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%s/%d", m.Mailbox, m.ID))
	}
	return strings.Join(out, ",")
}

// TestVoicemailList: messages are listed oldest first by mailbox, of all mailboxes or one, in
// one folder or both, with their caller, length, time and audio URL; an unknown mailbox is 404
// and a folder the store does not keep is 400.
func TestVoicemailList(t *testing.T) {
	e := start(t, pbx.Config{DataDir: t.TempDir()})
	for _, n := range []string{"100", "101", "102"} {
		e.addExt(t, n)
	}
	a, _ := e.addVoicemail(t, "101", "200", "Alice", 2)
	b, _ := e.addVoicemail(t, "100", "201", "", 1)
	c, _ := e.addVoicemail(t, "101", "202", "Carol", 3)
	if err := e.store.SetVoicemailFolder(context.Background(), "101", a.ID, store.FolderSaved); err != nil {
		t.Fatal(err)
	}
	id := func(m *store.VoicemailMessage) string { return fmt.Sprintf("%s/%d", m.Mailbox, m.ID) }

	all := e.listVoicemail(t, "")
	if got, want := vmIDs(all), strings.Join([]string{id(b), id(a), id(c)}, ","); got != want {
		t.Fatalf("all: %s, want %s", got, want)
	}
	got := all[1]
	if got.Caller != "200" || got.CallerName != "Alice" || got.Folder != "saved" || got.DurationSec != 2 ||
		!got.CreatedAt.Equal(a.CreatedAt) || got.AudioURL != fmt.Sprintf("/api/voicemail/101/%d/audio", a.ID) {
		t.Fatalf("message %+v, stored %+v", got, a)
	}
	if code, body := e.do(t, "GET", "/api/voicemail?mailbox=100", ""); code != 200 || strings.Contains(body, "caller_name") {
		t.Fatalf("a message without a caller name shows one: %d %s", code, body)
	}
	for _, tc := range []struct{ query, want string }{
		{"?mailbox=101", id(a) + "," + id(c)},
		{"?mailbox=101&folder=new", id(c)},
		{"?mailbox=101&folder=saved", id(a)},
		{"?folder=new", id(b) + "," + id(c)},
		{"?mailbox=102", ""},
	} {
		if got := vmIDs(e.listVoicemail(t, tc.query)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.query, got, tc.want)
		}
	}
	if code, body := e.do(t, "GET", "/api/voicemail?mailbox=102", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("empty mailbox: %d %s", code, body)
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"?mailbox=999", 404},
		{"?mailbox=a%20b", 404},
		{"?folder=old", 400},
		{"?folder=NEW", 400},
		{"?mailbox=101&folder=trash", 400},
	} {
		if code, body := e.do(t, "GET", "/api/voicemail"+tc.query, ""); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.query, code, body, tc.want)
		} else {
			errorOf(t, body)
		}
	}
}

// TestVoicemailAudio: a message's audio is its WAV file, as audio/wav, with byte ranges; a
// message that is not there, or whose file is gone, is 404; without the token 401.
func TestVoicemailAudio(t *testing.T) {
	e := start(t, pbx.Config{DataDir: t.TempDir()})
	e.addExt(t, "101")
	m, wav := e.addVoicemail(t, "101", "200", "Alice", 1)
	url := e.listVoicemail(t, "")[0].AudioURL

	get := func(auth, rng string) (*http.Response, []byte) {
		t.Helper()
		h := http.Header{}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		if rng != "" {
			h.Set("Range", rng)
		}
		return e.request(t, "GET", url, nil, h)
	}
	res, body := get("Bearer "+testToken, "")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "audio/wav" || !bytes.Equal(body, wav) ||
		res.Header.Get("Accept-Ranges") != "bytes" || !bytes.HasPrefix(body, []byte("RIFF")) {
		t.Fatalf("audio: %d %v, %d bytes (file %d)", res.StatusCode, res.Header, len(body), len(wav))
	}
	res, body = get("Bearer "+testToken, "bytes=44-99")
	if res.StatusCode != 206 || res.Header.Get("Content-Type") != "audio/wav" || !bytes.Equal(body, wav[44:100]) {
		t.Fatalf("range: %d %v, %d bytes", res.StatusCode, res.Header, len(body))
	}
	if res, body := get("", ""); res.StatusCode != 401 || bytes.Contains(body, []byte("RIFF")) {
		t.Fatalf("without the token: %d %q", res.StatusCode, body)
	}
	// The message is still new: fetching it is not hearing it on the phone.
	if x, err := e.store.Voicemail(context.Background(), "101", m.ID); err != nil || x.Folder != store.FolderNew {
		t.Fatalf("after fetching: %+v %v", x, err)
	}

	for _, path := range []string{
		fmt.Sprintf("/api/voicemail/101/%d/audio", m.ID+1),
		fmt.Sprintf("/api/voicemail/100/%d/audio", m.ID),
		"/api/voicemail/101/x/audio",
		"/api/voicemail/101/0/audio",
	} {
		if code, body := e.do(t, "GET", path, ""); code != 404 {
			t.Errorf("%s: %d %s, want 404", path, code, body)
		} else {
			errorOf(t, body)
		}
	}
	if err := os.Remove(m.Path); err != nil {
		t.Fatal(err)
	}
	if code, body := e.do(t, "GET", url, ""); code != 404 || !strings.Contains(errorOf(t, body), "missing") {
		t.Fatalf("file gone: %d %s", code, body)
	}
	// A message whose stored path leads out of the voicemail folder, by name or by a symbolic
	// link, is not served.
	outside := filepath.Join(t.TempDir(), "secret.wav")
	if err := os.WriteFile(outside, []byte("not for the API"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(filepath.Dir(m.Path), "link.wav")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{outside, link} {
		bad := &store.VoicemailMessage{Mailbox: "101", Caller: "200", CallID: "call-out", Path: path, Seconds: 1}
		if err := e.store.AddVoicemail(context.Background(), bad); err != nil {
			t.Fatal(err)
		}
		if code, body := e.do(t, "GET", fmt.Sprintf("/api/voicemail/101/%d/audio", bad.ID), ""); code != 404 {
			t.Fatalf("%s: %d %s, want 404", path, code, body)
		}
	}
}

// TestVoicemailPatch: PATCH moves a message to saved (heard) and back to new, answering the
// message; the mailbox's counts (its message-waiting lamp) follow. Bad folders are 422, bad
// bodies 400, unknown messages 404.
func TestVoicemailPatch(t *testing.T) {
	e := start(t, pbx.Config{DataDir: t.TempDir()})
	e.addExt(t, "101")
	m, _ := e.addVoicemail(t, "101", "200", "Alice", 1)
	path := fmt.Sprintf("/api/voicemail/101/%d", m.ID)
	ctx := context.Background()

	code, body := e.do(t, "PATCH", path, `{"folder":"saved"}`)
	var got vmView
	decode(t, body, &got)
	if code != 200 || got.ID != m.ID || got.Folder != "saved" || got.Caller != "200" {
		t.Fatalf("mark heard: %d %s", code, body)
	}
	if n, err := e.store.MailboxCounts(ctx, "101"); err != nil || n != (store.MailboxCounts{Old: 1}) {
		t.Fatalf("counts after marking heard: %+v %v", n, err)
	}
	if code, body := e.do(t, "PATCH", path, `{"folder":"new"}`); code != 200 || !strings.Contains(body, `"folder": "new"`) {
		t.Fatalf("mark new: %d %s", code, body)
	}
	if n, _ := e.store.MailboxCounts(ctx, "101"); n != (store.MailboxCounts{New: 1}) {
		t.Fatalf("counts after marking new: %+v", n)
	}
	for _, tc := range []struct {
		name, path, body string
		want             int
	}{
		{"unknown folder", path, `{"folder":"old"}`, 422},
		{"no folder", path, `{}`, 422},
		{"null folder", path, `{"folder":null}`, 422},
		{"malformed", path, `{"folder":`, 400},
		{"unknown field", path, `{"folder":"saved","heard":true}`, 400},
		{"wrong type", path, `{"folder":1}`, 400},
		{"empty body", path, ``, 400},
		{"unknown message", fmt.Sprintf("/api/voicemail/101/%d", m.ID+1), `{"folder":"saved"}`, 404},
		{"other mailbox", fmt.Sprintf("/api/voicemail/100/%d", m.ID), `{"folder":"saved"}`, 404},
		{"bad id", "/api/voicemail/101/abc", `{"folder":"saved"}`, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, "PATCH", tc.path, tc.body)
			if code != tc.want {
				t.Fatalf("%d %s, want %d", code, body, tc.want)
			}
			errorOf(t, body)
		})
	}
	if x, _ := e.store.Voicemail(ctx, "101", m.ID); x.Folder != store.FolderNew {
		t.Fatalf("a refused PATCH moved the message: %+v", x)
	}
}

// TestVoicemailDelete: DELETE is 204, removes the message and its WAV file and tells the
// voicemail watchers (the message-waiting lamps); again it is 404, as its audio is.
func TestVoicemailDelete(t *testing.T) {
	e := start(t, pbx.Config{DataDir: t.TempDir()})
	e.addExt(t, "101")
	m, _ := e.addVoicemail(t, "101", "200", "Alice", 1)
	keep, _ := e.addVoicemail(t, "101", "201", "Bob", 1)
	changed := make(chan struct{}, 16)
	stop := e.store.WatchVoicemail(func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer stop()
	// The messages just added may still be announced (the store polls a version every 0.1 s):
	// let that pass, so that the signal awaited below is the DELETE's.
	for quiet := time.After(500 * time.Millisecond); ; {
		select {
		case <-changed:
			continue
		case <-quiet:
		}
		break
	}
	path := fmt.Sprintf("/api/voicemail/101/%d", m.ID)
	if code, body := e.do(t, "DELETE", path, ""); code != 204 || body != "" {
		t.Fatalf("delete: %d %q", code, body)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the voicemail watchers were not told")
	}
	if _, err := os.Stat(m.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the WAV file is still there: %v", err)
	}
	if _, err := e.store.Voicemail(context.Background(), "101", m.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the message is still stored: %v", err)
	}
	if got := vmIDs(e.listVoicemail(t, "?mailbox=101")); got != fmt.Sprintf("101/%d", keep.ID) {
		t.Fatalf("after delete: %s", got)
	}
	for _, p := range []string{path, path + "/audio"} {
		method := map[bool]string{true: "GET", false: "DELETE"}[strings.HasSuffix(p, "/audio")]
		if code, body := e.do(t, method, p, ""); code != 404 {
			t.Errorf("%s %s again: %d %s", method, p, code, body)
		} else {
			errorOf(t, body)
		}
	}
	if code, body := e.doAuth(t, "DELETE", fmt.Sprintf("/api/voicemail/101/%d", keep.ID), "", ""); code != 401 {
		t.Fatalf("without the token: %d %s", code, body)
	}
	if _, err := os.Stat(keep.Path); err != nil {
		t.Fatalf("the other message's file: %v", err)
	}
}
