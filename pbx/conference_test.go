package pbx_test

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pbxkit/pbxkit/pbx"
)

// The PBX wires its rooms to the call core, with examples/dialplans/conference.lua: three
// callers on 800 each hear the other two and not themselves; a caller on 810 keys the board's
// PIN and joins room 10; the rooms are empty once they hung up, and the PBX holds nothing.
func TestConferenceThroughPBX(t *testing.T) {
	lo := freeEvenRange(t, 16)
	tp, _, _ := callPBX(t, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 15,
		DialplanScript: filepath.Join("..", "examples", "dialplans", "conference.lua")}, 0)
	type caller struct {
		phone *uaClient
		rtp   *b2buatest.RTP
		inv   *sip.Request
		ok    *sip.Response
		freq  float64
	}
	var cs []*caller
	for _, f := range []float64{400, 900, 1700} {
		c := &caller{phone: newClient(t, tp.addr), rtp: b2buatest.NewRTP(t), freq: f}
		var msg string
		msg, c.inv = c.phone.Invite("100", "800", nil, c.rtp.SDP())
		c.phone.Send(msg)
		c.ok = c.phone.WaitResponse(200)
		c.phone.Send(c.phone.InDialog("ACK", c.inv, c.ok, 1))
		t.Cleanup(c.rtp.SendTone(b2buatest.MediaAddr(t, c.ok.Body()), f))
		cs = append(cs, c)
	}
	waitRoom(t, tp, "00", 3)
	if got := metricValues(t, tp); got["pbxkit_conference_rooms"] != 1 || got["pbxkit_conference_participants"] != 3 {
		t.Errorf("metrics: %v rooms, %v participants; want 1 and 3", got["pbxkit_conference_rooms"], got["pbxkit_conference_participants"])
	}
	for _, c := range cs {
		c.rtp.Reset()
	}
	for i, c := range cs {
		got := c.rtp.WaitAudio(7200, 4*b2buatest.Wait)[3200:7200] // after the join tones
		for j, o := range cs {
			a := toneLevel(got, o.freq)
			if i != j && a < 8000/3 || i == j && a > 8000/10 {
				t.Errorf("caller %d (%v Hz) hears %v Hz at %.0f", i, c.freq, o.freq, a)
			}
		}
	}

	board := newClient(t, tp.addr)
	boardRTP := b2buatest.NewRTP(t)
	msg, inv := board.Invite("101", "810", nil, boardRTP.SDP())
	board.Send(msg)
	ok := board.WaitResponse(200)
	board.Send(board.InDialog("ACK", inv, ok, 1))
	boardRTP.SendDigits(b2buatest.MediaAddr(t, ok.Body()), "2468#")
	waitRoom(t, tp, "10", 1)
	if rooms := tp.Conferences().List(); len(rooms) != 2 || rooms[1].Name != "10" ||
		rooms[1].Participants[0].Name != "101" || !rooms[1].Participants[0].Moderator {
		t.Errorf("rooms: %+v", rooms)
	}
	cs = append(cs, &caller{phone: board, inv: inv, ok: ok})

	for _, c := range cs {
		c.phone.Send(c.phone.InDialog("BYE", c.inv, c.ok, 2))
		c.phone.WaitResponse(200)
	}
	waitIdle(t, tp)
	waitRoom(t, tp, "00", 0)
	waitRoom(t, tp, "10", 0)
	if got := metricValues(t, tp); got["pbxkit_conference_rooms"] != 0 || got["pbxkit_conference_participants"] != 0 {
		t.Errorf("metrics after: %v rooms, %v participants", got["pbxkit_conference_rooms"], got["pbxkit_conference_participants"])
	}
}

// waitRoom waits until room has n participants (0: no such room).
func waitRoom(t *testing.T, tp *testPBX, room string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		for _, r := range tp.Conferences().List() {
			if r.Name == room {
				got = len(r.Participants)
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("room %s: %d participants, want %d", room, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// toneLevel is the amplitude of freq in samples at 8 kHz: about A for a sine of amplitude A
// (audiotest.Goertzel gives the power, A²/4).
func toneLevel(samples []int16, freq float64) float64 {
	return 2 * math.Sqrt(audiotest.Goertzel(samples, 8000, freq))
}

// A room's changes are PBX events (Subscribe): two callers join room 05 over SIP, one is muted
// and unmuted through the rooms and kicked (the PBX hangs it up), the other hangs up and the room
// ends; each event names the room and the participant, the joins the caller and codec.
func TestConferenceEvents(t *testing.T) {
	lo := freeEvenRange(t, 8)
	tp, _, _ := callPBX(t, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 7,
		DialplanScript: filepath.Join("..", "examples", "dialplans", "conference.lua")}, 0)
	sub := tp.Subscribe(64)
	defer sub.Close()
	conf := func() pbx.Event { // the next conference event, skipping the calls'
		t.Helper()
		for {
			if ev := next(t, sub); strings.HasPrefix(ev.Kind, "conference.") {
				return ev
			}
		}
	}
	type caller struct {
		phone *uaClient
		inv   *sip.Request
		ok    *sip.Response
	}
	dial := func(from string, n int) caller {
		c := caller{phone: newClient(t, tp.addr)}
		var msg string
		msg, c.inv = c.phone.Invite(from, "805", nil, b2buatest.NewRTP(t).SDP())
		c.phone.Send(msg)
		c.ok = c.phone.WaitResponse(200)
		c.phone.Send(c.phone.InDialog("ACK", c.inv, c.ok, 1))
		waitRoom(t, tp, "05", n)
		return c
	}
	a := dial("100", 1)
	b := dial("102", 2)

	want := func(ev pbx.Event, kind string, id int, name, reason string) {
		t.Helper()
		if ev.Kind != kind || ev.Room != "05" || ev.Participant != id || ev.Caller != name || ev.Reason != reason ||
			ev.Time.IsZero() {
			t.Fatalf("got %+v, want %s of participant %d (%s) %s", ev, kind, id, name, reason)
		}
	}
	ev := conf()
	want(ev, pbx.ConferenceJoined, 1, "100", "")
	if ev.Codec != "PCMU" || ev.Moderator {
		t.Fatalf("joined: %+v", ev)
	}
	want(conf(), pbx.ConferenceJoined, 2, "102", "")

	rooms := tp.Conferences()
	if err := rooms.SetMuted("05", 2, true); err != nil {
		t.Fatal(err)
	}
	want(conf(), pbx.ConferenceMuted, 2, "102", "")
	if err := rooms.SetMuted("05", 2, false); err != nil {
		t.Fatal(err)
	}
	want(conf(), pbx.ConferenceUnmuted, 2, "102", "")
	if err := rooms.Kick("05", 2); err != nil {
		t.Fatal(err)
	}
	want(conf(), pbx.ConferenceLeft, 2, "102", "kicked")
	b.phone.Respond(b.phone.WaitRequest(sip.BYE), 200, "OK", "")

	a.phone.Send(a.phone.InDialog("BYE", a.inv, a.ok, 2))
	a.phone.WaitResponse(200)
	want(conf(), pbx.ConferenceLeft, 1, "100", "hangup")
	if ev := conf(); ev.Kind != pbx.ConferenceEnded || ev.Room != "05" || ev.Participant != 0 || ev.Caller != "" {
		t.Fatalf("got %+v, want the room's end", ev)
	}
	waitIdle(t, tp)
}
