package b2bua_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pbxkit/pbxkit/internal/callmedia"
	"github.com/pbxkit/pbxkit/media"
)

// confServer is a server with the media relay and conference rooms, whose calls are routed by
// route.
func confServer(t *testing.T, pairs int, route b2bua.RouteFunc) (*b2buatest.Server, *media.Conferences) {
	t.Helper()
	rooms := media.NewConferences(nil)
	t.Cleanup(rooms.Close)
	s := b2buatest.NewServer(t, b2bua.Config{Media: b2buatest.MediaRelay(t, pairs),
		Conferences: callmedia.Conferences(rooms)}, route)
	return s, rooms
}

// member is a caller in a conference: its phone, its audio, the tone it sends.
type member struct {
	phone *b2buatest.Phone
	rtp   *b2buatest.RTP
	inv   *sip.Request
	ok    *sip.Response
	pbx   netip.AddrPort
	freq  float64
	stop  func()
}

// dialConference has a new phone call number (the PBX answers and joins it to a room) and send
// a tone at freq.
func dialConference(t *testing.T, s *b2buatest.Server, number string, freq float64) *member {
	t.Helper()
	m := &member{phone: s.Phone(t), rtp: b2buatest.NewRTP(t), freq: freq}
	m.inv, m.ok, m.pbx = answeredByPBX(t, m.phone, m.rtp, number)
	m.stop = m.rtp.SendTone(m.pbx, freq)
	t.Cleanup(m.stop)
	return m
}

// hangUp sends the member's BYE.
func (m *member) hangUp(t *testing.T) {
	t.Helper()
	m.stop()
	m.phone.Send(m.phone.InDialog("BYE", m.inv, m.ok, 2))
	m.phone.WaitResponse(200)
}

// checkHearing checks that each member i hears member j's tone when hears(i, j) (at least a
// third of the tone's level: packets may be lost on a loaded machine), and at most a tenth of it
// otherwise, its own tone among them; over 500 ms of audio received after the join tones.
func checkHearing(t *testing.T, ms []*member, hears func(i, j int) bool) {
	t.Helper()
	const amp, settle, window = 8000, 3200, 4000 // b2buatest's tone; 400 ms; 500 ms
	for _, m := range ms {
		m.rtp.Reset()
	}
	for i, m := range ms {
		got := m.rtp.WaitAudio(settle+window, 10*b2buatest.Wait)[settle : settle+window]
		for j, o := range ms {
			a := toneLevel(got, o.freq)
			if want := hears(i, j); want && a < amp/3 || !want && a > amp/10 {
				t.Errorf("member %d (%v Hz) hears %v Hz at %.0f (tone %d), want heard: %v", i, m.freq, o.freq, a, amp, want)
			}
		}
	}
}

// Three callers in a room over real SIP and RTP: each hears the other two and not itself; one
// muted is heard by nobody; one hanging up leaves the other two hearing each other.
func TestConferenceThreeCallers(t *testing.T) {
	s, rooms := confServer(t, 8, func(ctx context.Context, c *b2bua.Call) error {
		_, err := c.Conference(ctx, "sales", b2bua.ConferenceOptions{})
		return err
	})
	var ms []*member
	for _, f := range []float64{400, 900, 1700} {
		ms = append(ms, dialConference(t, s, "800", f))
		waitMembers(t, rooms, "sales", len(ms)) // joined in this order: participant i+1 is ms[i]
	}
	checkHearing(t, ms, func(i, j int) bool { return i != j })

	info := rooms.List()[0].Participants
	if info[0].Codec != "PCMU" || info[0].Name != "100" {
		t.Errorf("participant listed as %+v", info[0])
	}
	if err := rooms.SetMuted("sales", info[1].ID, true); err != nil {
		t.Fatal(err)
	}
	checkHearing(t, ms, func(i, j int) bool { return i != j && j != 1 })
	if err := rooms.SetMuted("sales", info[1].ID, false); err != nil {
		t.Fatal(err)
	}

	ms[2].hangUp(t)
	waitMembers(t, rooms, "sales", 2)
	checkHearing(t, ms[:2], func(i, j int) bool { return i != j })
	for _, m := range ms[:2] {
		m.hangUp(t)
	}
	waitMembers(t, rooms, "sales", 0)
	s.WaitIdle()
}

// waitMembers waits until room has n participants (0: the room is gone).
func waitMembers(t *testing.T, rooms *media.Conferences, room string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * b2buatest.Wait)
	for {
		got := 0
		for _, r := range rooms.List() {
			if r.Name == room {
				got = len(r.Participants)
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("room %s has %d participants, want %d", room, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// confResults routes every call into room (as moderator when the dialled number is mod) with
// opts, and hands each Conference's outcome to the test.
func confResults(t *testing.T, pairs int, room, mod string, opts b2bua.ConferenceOptions) (*b2buatest.Server, *media.Conferences, <-chan result[b2bua.ConferenceResult]) {
	t.Helper()
	out := make(chan result[b2bua.ConferenceResult], 8)
	s, rooms := confServer(t, pairs, func(ctx context.Context, c *b2bua.Call) error {
		o := opts
		o.Moderator = c.Request().To().Address.User == mod
		r, err := c.Conference(ctx, room, o)
		out <- result[b2bua.ConferenceResult]{r, err}
		return nil // the end of routing hangs the caller up
	})
	return s, rooms, out
}

// The PIN is asked for: keyed right the caller joins; keyed wrong three times, Conference says
// so (and the end of routing hangs the caller up).
func TestConferencePIN(t *testing.T) {
	s, rooms, out := confResults(t, 8, "board", "", b2bua.ConferenceOptions{PIN: "4321"})

	right := s.Phone(t)
	rtp := b2buatest.NewRTP(t)
	inv, ok, pbx := answeredByPBX(t, right, rtp, "800")
	rtp.SendDigits(pbx, "4321#")
	waitMembers(t, rooms, "board", 1)

	wrong := s.Phone(t)
	wrtp := b2buatest.NewRTP(t)
	_, _, wpbx := answeredByPBX(t, wrong, wrtp, "800")
	wrtp.SendDigits(wpbx, "1111#2222#3333#") // three tries, each ended by '#'
	select {
	case r := <-out:
		if !errors.Is(r.err, b2bua.ErrWrongPIN) {
			t.Fatalf("three wrong PINs: %+v, %v", r.v, r.err)
		}
	case <-time.After(12 * b2buatest.Wait):
		t.Fatal("Conference did not give up after three wrong PINs")
	}
	wrong.Respond(wrong.WaitRequest(sip.BYE), 200, "OK", "")
	if got := rooms.List(); len(got) != 1 || len(got[0].Participants) != 1 {
		t.Fatalf("rooms after a wrong PIN: %+v", got)
	}

	right.Send(right.InDialog("BYE", inv, ok, 2))
	right.WaitResponse(200)
	if r := waitResult(t, out); r.Ended != b2bua.ConferenceHangup || r.Room != "board" {
		t.Fatalf("the caller hung up: %+v", r)
	}
	waitMembers(t, rooms, "board", 0)
	s.WaitIdle()
}

// A participant taken out of the room (the admin API's kick) is hung up; when the last
// moderator leaves, everyone else is too.
func TestConferenceKickAndModerator(t *testing.T) {
	s, rooms, out := confResults(t, 8, "sales", "801", b2bua.ConferenceOptions{})
	a := dialConference(t, s, "800", 400)
	waitMembers(t, rooms, "sales", 1)
	b := dialConference(t, s, "800", 900)
	waitMembers(t, rooms, "sales", 2)

	if err := rooms.Kick("sales", rooms.List()[0].Participants[0].ID); err != nil {
		t.Fatal(err)
	}
	a.phone.Respond(a.phone.WaitRequest(sip.BYE), 200, "OK", "")
	if r := waitResult(t, out); r.Ended != b2bua.ConferenceKicked {
		t.Fatalf("kicked: %+v", r)
	}

	mod := dialConference(t, s, "801", 1700)
	waitMembers(t, rooms, "sales", 2)
	if info := rooms.List()[0].Participants; !info[1].Moderator || info[0].Moderator {
		t.Fatalf("participants: %+v", info)
	}
	mod.hangUp(t)
	b.phone.Respond(b.phone.WaitRequest(sip.BYE), 200, "OK", "")
	ended := map[string]bool{}
	for range 2 {
		ended[waitResult(t, out).Ended] = true
	}
	if !ended[b2bua.ConferenceKicked] || !ended[b2bua.ConferenceHangup] {
		t.Fatalf("the moderator hung up, the other was taken out: %v", ended)
	}
	waitMembers(t, rooms, "sales", 0)
	s.WaitIdle()
}

// A caller offering no G.711 codec is refused with 488; a PBX without rooms says so.
func TestConferenceRefusals(t *testing.T) {
	s, rooms, out := confResults(t, 8, "sales", "", b2bua.ConferenceOptions{})
	caller := s.Phone(t)
	rtp := b2buatest.NewRTP(t)
	g722 := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		fmt.Sprintf("m=audio %d RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n", rtp.Port())
	msg, _ := caller.Invite("100", "800", nil, g722)
	caller.Send(msg)
	caller.WaitResponse(488)
	if r := <-out; r.err == nil {
		t.Fatalf("a G.722 caller joined: %+v", r.v)
	}
	if got := rooms.List(); len(got) != 0 {
		t.Fatalf("rooms: %+v", got)
	}

	noRooms := make(chan error, 1)
	bare := appServer(t, func(ctx context.Context, c *b2bua.Call) error {
		_, err := c.Conference(ctx, "sales", b2bua.ConferenceOptions{})
		noRooms <- err
		return c.Reject(503, "")
	})
	p := bare.Phone(t)
	msg, _ = p.Invite("100", "800", nil, b2buatest.NewRTP(t).SDP())
	p.Send(msg)
	p.WaitResponse(503)
	if err := <-noRooms; !errors.Is(err, b2bua.ErrNoConferences) {
		t.Fatalf("without rooms: %v", err)
	}
}

// Twenty callers in one room: three talk (distinct tones), seventeen listen. Each talker hears
// the other two and not itself; every listener hears all three.
func TestConferenceTwentyCallers(t *testing.T) {
	s, rooms := confServer(t, 40, func(ctx context.Context, c *b2bua.Call) error {
		_, err := c.Conference(ctx, "all-hands", b2bua.ConferenceOptions{})
		return err
	})
	var ms []*member
	for i := range 20 {
		m := &member{phone: s.Phone(t), rtp: b2buatest.NewRTP(t)}
		m.inv, m.ok, m.pbx = answeredByPBX(t, m.phone, m.rtp, "800")
		if i < 3 {
			m.freq = []float64{400, 900, 1700}[i]
			m.stop = m.rtp.SendTone(m.pbx, m.freq)
			t.Cleanup(m.stop)
		}
		ms = append(ms, m)
	}
	waitMembers(t, rooms, "all-hands", 20)
	talkers := ms[:3]
	const amp, settle, window = 8000, 3200, 4000
	for _, m := range ms {
		m.rtp.Reset()
	}
	for i, m := range ms {
		got := m.rtp.WaitAudio(settle+window, 10*b2buatest.Wait)[settle : settle+window]
		for j, o := range talkers {
			a := toneLevel(got, o.freq)
			if want := i != j; want && a < amp/3 || !want && a > amp/10 {
				t.Errorf("caller %d hears %v Hz at %.0f, want heard: %v", i, o.freq, a, want)
			}
		}
	}
	for _, m := range ms {
		if m.stop != nil {
			m.stop()
		}
		m.phone.Send(m.phone.InDialog("BYE", m.inv, m.ok, 2))
		m.phone.WaitResponse(200)
	}
	waitMembers(t, rooms, "all-hands", 0)
	s.WaitIdle()
}

// toneLevel is the amplitude of freq in samples at 8 kHz: about A for a sine of amplitude A
// (audiotest.Goertzel gives the power, A²/4).
func toneLevel(samples []int16, freq float64) float64 {
	return 2 * math.Sqrt(audiotest.Goertzel(samples, 8000, freq))
}

// Wrong PINs count across calls: after the limit (3 here, 10 by default) the room is locked, and
// a later caller keying the right PIN is refused like a wrong one and does not join.
func TestConferencePINLockout(t *testing.T) {
	s, rooms, out := confResults(t, 8, "board", "", b2bua.ConferenceOptions{PIN: "4321"})
	b2bua.SetPINLimit(s.Engine, 3)
	for _, keys := range []string{"1111#2222#3333#", "4321#4321#4321#"} { // the second call: the right PIN, locked out
		ph, rtp := s.Phone(t), b2buatest.NewRTP(t)
		_, _, pbx := answeredByPBX(t, ph, rtp, "800")
		rtp.SendDigits(pbx, keys)
		select {
		case r := <-out:
			if !errors.Is(r.err, b2bua.ErrWrongPIN) {
				t.Fatalf("keys %s: %+v, %v; want ErrWrongPIN", keys, r.v, r.err)
			}
		case <-time.After(12 * b2buatest.Wait):
			t.Fatalf("keys %s: Conference did not give up", keys)
		}
		ph.Respond(ph.WaitRequest(sip.BYE), 200, "OK", "")
	}
	if got := rooms.List(); len(got) != 0 {
		t.Fatalf("rooms after the lockout: %+v", got)
	}
	s.WaitIdle()
}

// A kicked caller is hung up by Conference itself, even when the route goes on (here: it would
// play ringback for minutes to a caller still there): the caller gets a BYE, and the route's
// Play finds the call ended.
func TestConferenceKickHangsUp(t *testing.T) {
	played := make(chan error, 1)
	rooms := media.NewConferences(nil)
	t.Cleanup(rooms.Close)
	s := b2buatest.NewServer(t, b2bua.Config{Media: b2buatest.MediaRelay(t, 8),
		Conferences: callmedia.Conferences(rooms)}, func(ctx context.Context, c *b2bua.Call) error {
		r, err := c.Conference(ctx, "ops", b2bua.ConferenceOptions{})
		if err != nil || r.Ended != b2bua.ConferenceKicked {
			played <- fmt.Errorf("conference: %+v, %v", r, err)
			return nil
		}
		_, err = c.Play(ctx, []string{"tone:ringback"}, b2bua.PlayOptions{Loop: 60})
		played <- err
		return nil
	})
	a := dialConference(t, s, "800", 400)
	waitMembers(t, rooms, "ops", 1)
	if err := rooms.Kick("ops", rooms.List()[0].Participants[0].ID); err != nil {
		t.Fatal(err)
	}
	a.phone.Respond(a.phone.WaitRequest(sip.BYE), 200, "OK", "")
	select {
	case err := <-played:
		if !errors.Is(err, b2bua.ErrDecided) {
			t.Fatalf("the route's Play after the kick: %v, want ErrDecided", err)
		}
	case <-time.After(4 * b2buatest.Wait):
		t.Fatal("the route's Play went on after the kick")
	}
	s.WaitIdle()
}
