package pbx_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// mwiSpec is a message-summary SUBSCRIBE from 201 at ph for mailbox.
func mwiSpec(ph *uaClient, mailbox, expires string) reqSpec {
	r := subscribeSpec(ph, mailbox, expires)
	r.Headers = []string{"Contact: <" + ph.Contact("201") + ">", "Event: message-summary", "Accept: " + pbx.ContentTypeMessageSummary}
	if expires != "" {
		r.Headers = append(r.Headers, "Expires: "+expires)
	}
	return r
}

// mwiSubscribe subscribes ph (as 201, authenticating) to mailbox 201's lamp.
func mwiSubscribe(t *testing.T, ph *uaClient, expires string) *watcher {
	t.Helper()
	res, req := trySubscribe(t, ph, mwiSpec(ph, "201", expires))
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE to mailbox 201: %d %s (%s)", res.StatusCode, res.Reason, header(res, "Warning"))
	}
	return &watcher{t: t, ph: ph, sub: req, ok: res, cseq: int(req.CSeq().SeqNo)}
}

// summary takes the next NOTIFY of a message-summary subscription, answers it 200, checks its
// dialog, Event and Content-Type, and returns its Subscription-State and body.
func (w *watcher) summary() (state, body string) {
	w.t.Helper()
	for {
		req := w.ph.WaitRequest(sip.NOTIFY)
		w.ph.Respond(req, 200, "OK", "")
		if req.CallID().Value() != w.sub.CallID().Value() {
			w.t.Fatalf("NOTIFY of another dialog: %s", req.CallID().Value())
		}
		if req.CSeq().SeqNo == w.last {
			continue // a retransmission
		}
		w.last = req.CSeq().SeqNo
		fromTag, _ := req.From().Params.Get("tag")
		okTag, _ := w.ok.To().Params.Get("tag")
		switch {
		case fromTag != okTag:
			w.t.Fatalf("NOTIFY From tag %s, want %s", fromTag, okTag)
		case header(req, "Event") != pbx.EventPackageMessageSummary:
			w.t.Fatalf("NOTIFY Event %q", header(req, "Event"))
		case header(req, "Content-Type") != pbx.ContentTypeMessageSummary:
			w.t.Fatalf("NOTIFY Content-Type %q", header(req, "Content-Type"))
		}
		return header(req, "Subscription-State"), string(req.Body())
	}
}

// expectSummary takes the next NOTIFY and checks its lamp and counts (new/old).
func (w *watcher) expectSummary(state, waiting string, newMsgs, oldMsgs int) {
	w.t.Helper()
	st, body := w.summary()
	want := fmt.Sprintf("Messages-Waiting: %s\r\nMessage-Account: sip:201@pbx.test\r\nVoice-Message: %d/%d (0/0)\r\n",
		waiting, newMsgs, oldMsgs)
	if !strings.HasPrefix(st, state) || body != want {
		w.t.Fatalf("NOTIFY %q with\n%q\nwant %q with\n%q", st, body, state, want)
	}
}

// TestMWI: the owner of mailbox 201 subscribes to message-summary (RFC 3842) and hears, at once
// and after each change, whether messages wait and how many: a message left (yes, 1/0), heard
// (no, 0/1), another left (yes, 1/1), both removed by another process sharing the database, as
// the officepbx CLI is (no, 0/0). A change to another mailbox sends nothing; a refresh sends the
// unchanged summary; unsubscribing ends with a terminated NOTIFY. Both databases.
func TestMWI(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": testenv.SQLiteDSN, "postgres": testenv.PostgresDSN} {
		t.Run(name, func(t *testing.T) {
			db := dsn(t)
			tp := startPBXOn(t, db, pbx.Config{})
			tp.addExt(t, "201", "pw201")
			tp.addExt(t, "202", "pw202")
			cli, err := store.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			ctx := context.Background()
			dir := t.TempDir()
			leave := func(s *store.Store, mailbox string) *store.VoicemailMessage {
				path := filepath.Join(dir, fmt.Sprintf("%d.wav", time.Now().UnixNano()))
				os.WriteFile(path, []byte("RIFF"), 0o600)
				m := &store.VoicemailMessage{Mailbox: mailbox, Caller: "202", Path: path, Seconds: 3}
				if err := s.AddVoicemail(ctx, m); err != nil {
					t.Fatal(err)
				}
				return m
			}

			w := mwiSubscribe(t, newClient(t, tp.addr), "600")
			if got := header(w.ok, "Expires"); got != "600" {
				t.Fatalf("Expires %q, want 600", got)
			}
			w.expectSummary("active;expires=", "no", 0, 0)

			first := leave(tp.store, "201")
			w.expectSummary("active", "yes", 1, 0)
			if err := tp.store.SetVoicemailFolder(ctx, "201", first.ID, store.FolderSaved); err != nil {
				t.Fatal(err)
			}
			w.expectSummary("active", "no", 0, 1)
			leave(tp.store, "202")      // another mailbox: nothing to tell 201, so the next NOTIFY
			second := leave(cli, "201") // is for this one, left by another process
			w.expectSummary("active", "yes", 1, 1)

			if res := w.resubscribeTo(pbx.EventPackageMessageSummary, 300); res.StatusCode != 200 {
				t.Fatalf("refresh: %d", res.StatusCode)
			}
			w.expectSummary("active;expires=300", "yes", 1, 1)

			for _, m := range []*store.VoicemailMessage{first, second} {
				if _, err := cli.DeleteVoicemail(ctx, "201", m.ID); err != nil {
					t.Fatal(err)
				}
			}
			// One NOTIFY per change seen: the watcher may see both deletions at once.
			for {
				st, body := w.summary()
				if strings.Contains(body, "Voice-Message: 0/0 (0/0)") {
					if !strings.HasPrefix(body, "Messages-Waiting: no\r\n") || !strings.HasPrefix(st, "active") {
						t.Fatalf("after the deletions: %q %q", st, body)
					}
					break
				}
				if body != "Messages-Waiting: no\r\nMessage-Account: sip:201@pbx.test\r\nVoice-Message: 0/1 (0/0)\r\n" &&
					body != "Messages-Waiting: yes\r\nMessage-Account: sip:201@pbx.test\r\nVoice-Message: 1/0 (0/0)\r\n" {
					t.Fatalf("between the deletions: %q", body)
				}
			}

			if res := w.resubscribeTo(pbx.EventPackageMessageSummary, 0); res.StatusCode != 200 {
				t.Fatalf("unsubscribe: %d", res.StatusCode)
			}
			w.expectSummary("terminated;reason=timeout", "no", 0, 0)
			waitSubscriptions(t, tp, 0)
		})
	}
}

// resubscribeTo sends a SUBSCRIBE for package in the subscription's dialog.
func (w *watcher) resubscribeTo(pkg string, expires int) *sip.Response {
	w.t.Helper()
	w.cseq++
	lines := fmt.Sprintf("Event: %s\r\nContact: <%s>\r\nExpires: %d\r\n", pkg, w.ph.Contact("201"), expires)
	return w.ph.Do(w.ph.InDialogWith("SUBSCRIBE", w.sub, w.ok, w.cseq, lines))
}

// TestMWIRefused: another extension's mailbox is 403 (201 authenticates and asks for 202's); an
// Accept without the summary's type is 406; a refresh naming another package is 489; OPTIONS
// names both packages in Allow-Events.
func TestMWIRefused(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	tp.addExt(t, "201", "pw201")
	tp.addExt(t, "202", "pw202")
	ph := newClient(t, tp.addr)
	if res, _ := trySubscribe(t, ph, mwiSpec(ph, "202", "600")); res.StatusCode != 403 {
		t.Fatalf("SUBSCRIBE to another's mailbox: %d %s, want 403", res.StatusCode, res.Reason)
	}
	r := mwiSpec(ph, "201", "600")
	r.Headers = append(r.Headers[:2], "Accept: "+pbx.ContentTypeDialogInfo)
	if res, _ := trySubscribe(t, ph, r); res.StatusCode != 406 || header(res, "Accept") != pbx.ContentTypeMessageSummary {
		t.Fatalf("Accept without the summary: %d Accept %q, want 406", res.StatusCode, header(res, "Accept"))
	}
	w := mwiSubscribe(t, ph, "")
	if got := header(w.ok, "Expires"); got != "3600" {
		t.Fatalf("default Expires %q, want 3600", got)
	}
	w.expectSummary("active", "no", 0, 0)
	if res := w.resubscribeTo(pbx.EventPackageDialog, 600); res.StatusCode != 489 {
		t.Fatalf("refresh naming dialog: %d, want 489", res.StatusCode)
	}
	res := ph.Do(ph.Build(reqSpec{Method: "OPTIONS", From: "201", To: "201"}))
	if got := header(res, "Allow-Events"); got != "dialog, message-summary" {
		t.Fatalf("OPTIONS Allow-Events %q", got)
	}
}

// TestMWIVoicemailNumber: a phone that subscribes to its voicemail number (sip:*97@...) instead
// of its own address gets its own mailbox's lamp.
func TestMWIVoicemailNumber(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	tp.addExt(t, "201", "pw201")
	ph := newClient(t, tp.addr)
	res, req := trySubscribe(t, ph, mwiSpec(ph, "*97", "600"))
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE to *97: %d %s (%s)", res.StatusCode, res.Reason, header(res, "Warning"))
	}
	w := &watcher{t: t, ph: ph, sub: req, ok: res, cseq: int(req.CSeq().SeqNo)}
	w.expectSummary("active", "no", 0, 0) // Message-Account: sip:201@pbx.test
}
