package admin_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/media"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// browser starts headless Chromium for the test and returns a context driving one tab; it is
// stopped when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := testenv.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in containers and CI
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTime := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("chromium %s does not start: %v", path, err)
	}
	return ctx
}

// run runs chromedp steps, failing the test with what was being done.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text reads the text of the element sel selects.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// TestConsoleInChromium drives the web console in a real headless Chromium: it signs in with the
// token, adds an extension and sees it listed, sees a live call appear (pushed by the event
// stream: the console does not poll), hangs it up with the console's button and sees it end and
// its record listed.
func TestConsoleInChromium(t *testing.T) {
	e := start(t, pbx.Config{})
	ctx := browser(t)

	// A wrong token is refused.
	run(t, ctx, "sign in with a wrong token",
		chromedp.Navigate(e.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token-at-all"),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="login-error"][contains(., "not accepted")]`)),
	)
	run(t, ctx, "sign in",
		chromedp.SetValue(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#app")),
		chromedp.WaitVisible(chromedp.Search(`//span[@id="live"][contains(., "live")]`)),
	)

	run(t, ctx, "add extension 150",
		chromedp.SendKeys(chromedp.CSS("#ext-number"), "150"),
		chromedp.SendKeys(chromedp.CSS("#ext-name"), "Bob Builder"),
		chromedp.SendKeys(chromedp.CSS("#ext-password"), "secret-150"),
		chromedp.Click(chromedp.CSS("#ext-save")),
		chromedp.WaitVisible(chromedp.CSS(`#extensions tbody tr[data-number="150"]`)),
	)
	listed := text(t, ctx, `#extensions tbody tr[data-number="150"]`)
	if !strings.Contains(listed, "Bob Builder") {
		t.Fatalf("listed: %q", listed)
	}
	if x, err := e.store.Extension(context.Background(), "150"); err != nil || !x.CheckPassword("secret-150") {
		t.Fatalf("stored extension: %+v %v", x, err)
	}

	// A live call appears, answered.
	caller, callee := e.phones(t)
	inv, _, _ := b2buatest.AnsweredCall(t, caller, callee)
	row := fmt.Sprintf(`#calls tbody tr[data-id=%q]`, inv.CallID().Value())
	run(t, ctx, "see the call", chromedp.WaitVisible(chromedp.CSS(row+".answered")))
	shown := text(t, ctx, row)
	if !strings.Contains(shown, "100") || !strings.Contains(shown, "200") || !strings.Contains(shown, "answered") {
		t.Fatalf("call row: %q", shown)
	}

	// Hang it up from the console: both phones get BYE, the row goes, the record shows.
	run(t, ctx, "hang up", chromedp.Click(chromedp.CSS(row+" button.hangup")))
	byeBoth(t, caller, callee)
	e.waitCalls(t, 0)
	run(t, ctx, "see the call end", chromedp.WaitNotPresent(chromedp.CSS(row)))
	run(t, ctx, "see the call's record",
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#cdrs tbody tr[data-call-id=%q]`, inv.CallID().Value()))),
	)
}

// TestConsoleRecording drives the console's recording controls in Chromium: an extension added
// with "Record calls" ticked is stored so, and a live call is recorded and stopped with the call
// row's buttons (the row follows the event stream's recording events).
func TestConsoleRecording(t *testing.T) {
	lo := relayPorts(t, 8)
	e := start(t, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 7, RecordingsDir: t.TempDir()})
	ctx := browser(t)
	run(t, ctx, "sign in",
		chromedp.Navigate(e.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SetValue(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.Search(`//span[@id="live"][contains(., "live")]`)),
	)
	run(t, ctx, "add extension 151, recorded",
		chromedp.SendKeys(chromedp.CSS("#ext-number"), "151"),
		chromedp.SendKeys(chromedp.CSS("#ext-password"), "secret-151"),
		chromedp.Click(chromedp.CSS("#ext-record")),
		chromedp.Click(chromedp.CSS("#ext-save")),
		chromedp.WaitVisible(chromedp.CSS(`#extensions tbody tr[data-number="151"]`)),
	)
	if x, err := e.store.Extension(context.Background(), "151"); err != nil || !x.Record {
		t.Fatalf("stored extension: %+v %v", x, err)
	}

	caller, callee := e.phones(t)
	inv, ok, _ := b2buatest.AnsweredCall(t, caller, callee)
	id := inv.CallID().Value()
	row := fmt.Sprintf(`#calls tbody tr[data-id=%q]`, id)
	run(t, ctx, "record the call",
		chromedp.WaitVisible(chromedp.CSS(row+".answered button.record")),
		chromedp.Click(chromedp.CSS(row+" button.record")),
		chromedp.WaitVisible(chromedp.CSS(row+".recording button.stop-record")),
	)
	calls := e.pbx.Calls()
	if len(calls) != 1 || calls[0].Recording == "" {
		t.Fatalf("calls %+v: not recorded", calls)
	}
	run(t, ctx, "stop recording",
		chromedp.Click(chromedp.CSS(row+" button.stop-record")),
		chromedp.WaitVisible(chromedp.CSS(row+":not(.recording) button.record")),
	)
	if c := e.pbx.Calls(); len(c) != 1 || c[0].Recording != "" {
		t.Fatalf("calls %+v: still recorded", c)
	}
	b2buatest.HangUp(t, caller, callee, inv, ok, 2)
	e.waitCalls(t, 0)
}

// TestConsoleVoicemail drives the console's voicemail list in Chromium: a seeded message is
// listed with its caller; Play fetches its audio with the token and plays it in an <audio>
// player; Mark heard moves it to saved; Delete asks first (cancelled: nothing happens), then
// removes it from the table, the store and the disk.
func TestConsoleVoicemail(t *testing.T) {
	e := start(t, pbx.Config{DataDir: t.TempDir()})
	e.addExt(t, "101")
	m, _ := e.addVoicemail(t, "101", "200", "Alice Caller", 2)
	ctx := browser(t)

	// confirm() dialogs get the answers sent to answers, and their messages go to asked.
	answers, asked := make(chan bool, 2), make(chan string, 2)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			asked <- ev.Message
			accept := false
			select {
			case accept = <-answers:
			default:
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept})
		}
	}()

	rowSel := fmt.Sprintf(`#voicemail tbody tr[data-mailbox="101"][data-id="%d"]`, m.ID)
	run(t, ctx, "sign in and see the message",
		chromedp.Navigate(e.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SetValue(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS(rowSel+`[data-folder="new"]`)),
	)
	if shown := text(t, ctx, rowSel); !strings.Contains(shown, "Alice Caller (200)") || !strings.Contains(shown, "2 s") || !strings.Contains(shown, "new") {
		t.Fatalf("message row: %q", shown)
	}

	// Play: the audio is fetched with the token into a blob the player plays (the page's CSP
	// lets it); its length shows the WAV was read.
	run(t, ctx, "play the message",
		chromedp.Click(chromedp.CSS(rowSel+" button.play")),
		chromedp.WaitVisible(chromedp.CSS(rowSel+" audio")),
	)
	dur, err := chromedp.Run(ctx, chromedp.Poll[float64](
		`(() => { const a = document.querySelector('`+rowSel+` audio');
		  return a && a.src.startsWith("blob:") && a.readyState >= 1 && a.duration; })()`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil || dur < 1.9 || dur > 2.1 {
		t.Fatalf("the player did not load the message: duration %v, %v", dur, err)
	}

	run(t, ctx, "mark it heard",
		chromedp.Click(chromedp.CSS(rowSel+" button.heard")),
		chromedp.WaitVisible(chromedp.CSS(rowSel+`[data-folder="saved"]`)),
	)
	if x, err := e.store.Voicemail(context.Background(), "101", m.ID); err != nil || x.Folder != "saved" {
		t.Fatalf("stored after Mark heard: %+v %v", x, err)
	}

	// Delete, cancelled at the question: the message stays.
	answers <- false
	run(t, ctx, "delete, cancelled", chromedp.Click(chromedp.CSS(rowSel+" button.delete")))
	if q := <-asked; !strings.Contains(q, "Alice Caller") || !strings.Contains(q, "101") {
		t.Fatalf("the question: %q", q)
	}
	if _, err := e.store.Voicemail(context.Background(), "101", m.ID); err != nil {
		t.Fatalf("a cancelled delete deleted: %v", err)
	}
	answers <- true
	run(t, ctx, "delete",
		chromedp.Click(chromedp.CSS(rowSel+" button.delete")),
		chromedp.WaitNotPresent(chromedp.CSS(rowSel)),
		chromedp.WaitVisible(chromedp.CSS("#vm-empty")),
	)
	<-asked
	if _, err := e.store.Voicemail(context.Background(), "101", m.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the message is still stored: %v", err)
	}
	if _, err := os.Stat(m.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the WAV file is still there: %v", err)
	}
}

// TestConsoleConferences drives the console's Conferences view in Chromium: a caller dialling a
// room appears in it (pushed by the event stream) with its number and codec, beside a participant
// whose name is markup (shown as text); Mute shows it muted, as the API says; Kick asks first
// (cancelled: it stays), then takes it out: the caller is hung up and its row goes; the room goes
// when its last participant leaves.
func TestConsoleConferences(t *testing.T) {
	e := confEnv(t)
	ctx := browser(t)
	answers, asked := make(chan bool, 2), make(chan string, 2)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			asked <- ev.Message
			accept := false
			select {
			case accept = <-answers:
			default:
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept})
		}
	}()
	run(t, ctx, "sign in",
		chromedp.Navigate(e.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SetValue(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.Search(`//span[@id="live"][contains(., "live")]`)),
		chromedp.WaitVisible(chromedp.CSS("#conf-empty")),
	)

	c := e.dialRoom(t, "100", "07")
	rowSel := `#conferences table[data-room="07"] tr[data-id="1"]`
	run(t, ctx, "see the caller in room 07", chromedp.WaitVisible(chromedp.CSS(rowSel+`[data-muted="false"]`)))
	if shown := text(t, ctx, rowSel); !strings.Contains(shown, "100") || !strings.Contains(shown, "PCMU") {
		t.Fatalf("participant row: %q", shown)
	}
	other, err := e.pbx.Conferences().Join("07", media.ParticipantConfig{Codec: media.PCMA, Name: `<b id="x">bold</b>`,
		Moderator: true, Send: func([]byte) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Leave()
	otherSel := `#conferences table[data-room="07"] tr[data-id="2"]`
	run(t, ctx, "see the second participant", chromedp.WaitVisible(chromedp.CSS(otherSel)))
	if shown := text(t, ctx, otherSel); !strings.Contains(shown, `<b id="x">bold</b>`) || !strings.Contains(shown, "moderator") {
		t.Fatalf("a name of markup: %q", shown)
	}
	run(t, ctx, "no markup was made", chromedp.WaitNotPresent(chromedp.CSS("#conferences b#x")))

	run(t, ctx, "mute",
		chromedp.Click(chromedp.CSS(rowSel+" button.mute")),
		chromedp.WaitVisible(chromedp.CSS(rowSel+`[data-muted="true"] button.unmute`)),
	)
	if shown := text(t, ctx, rowSel); !strings.Contains(shown, "muted") {
		t.Fatalf("muted row: %q", shown)
	}
	_, body := e.do(t, "GET", "/api/conferences", "")
	var listed []media.ConferenceInfo
	decode(t, body, &listed)
	if len(listed) != 1 || len(listed[0].Participants) != 2 || listed[0].Participants[0].Name != "100" ||
		!listed[0].Participants[0].Muted || listed[0].Participants[1].Muted {
		t.Fatalf("the API after Mute: %s", body)
	}

	answers <- false
	run(t, ctx, "kick, cancelled", chromedp.Click(chromedp.CSS(rowSel+" button.kick")))
	if q := <-asked; !strings.Contains(q, "100") || !strings.Contains(q, "07") {
		t.Fatalf("the question: %q", q)
	}
	if rooms := e.pbx.Conferences().List(); len(rooms) != 1 || len(rooms[0].Participants) != 2 {
		t.Fatalf("a cancelled kick kicked: %+v", rooms)
	}
	answers <- true
	run(t, ctx, "kick",
		chromedp.Click(chromedp.CSS(rowSel+" button.kick")),
		chromedp.WaitNotPresent(chromedp.CSS(rowSel)),
	)
	<-asked
	c.phone.Respond(c.phone.WaitRequest(sip.BYE), 200, "OK", "")
	e.waitCalls(t, 0)
	if rooms := e.pbx.Conferences().List(); len(rooms) != 1 || len(rooms[0].Participants) != 1 {
		t.Fatalf("after Kick: %+v", rooms)
	}
	other.Leave()
	run(t, ctx, "see the room end",
		chromedp.WaitNotPresent(chromedp.CSS(`#conferences table[data-room="07"]`)),
		chromedp.WaitVisible(chromedp.CSS("#conf-empty")),
	)
}
