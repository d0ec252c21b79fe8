package admin_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/media"
	"github.com/pbxkit/pbxkit/pbx"
)

// TestConferences: the rooms are listed with their participants; mute, unmute and kick act on the
// participant named; unknown rooms and participants are 404.
func TestConferences(t *testing.T) {
	e := start(t, pbx.Config{})
	if code, body := e.do(t, "GET", "/api/conferences", ""); code != 200 || body != "[]\n" {
		t.Fatalf("no rooms: %d %q", code, body)
	}
	join := func(room, name string, c media.Codec) *media.Participant {
		p, err := e.pbx.Conferences().Join(room, media.ParticipantConfig{Codec: c, Name: name, Send: func([]byte) {}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Leave)
		return p
	}
	a := join("sales", "101", media.PCMU)
	b := join("sales", "102", media.PCMA)
	join("board", "201", media.PCMU)

	code, body := e.do(t, "GET", "/api/conferences", "")
	var rooms []struct {
		Name         string
		Participants []struct {
			ID          int
			Name, Codec string
			Muted       bool
			Joined      string
		}
	}
	decode(t, body, &rooms)
	if code != 200 || len(rooms) != 2 || rooms[1].Name != "sales" || len(rooms[1].Participants) != 2 ||
		rooms[1].Participants[1].ID != b.ID() || rooms[1].Participants[1].Name != "102" ||
		rooms[1].Participants[1].Codec != "PCMA" || rooms[1].Participants[1].Joined == "" {
		t.Fatalf("rooms: %d %s", code, body)
	}

	path := fmt.Sprintf("/api/conferences/sales/participants/%d", b.ID())
	code, body = e.do(t, "POST", path+"/mute", "")
	var state struct {
		Room  string
		ID    int
		Muted bool
	}
	decode(t, body, &state)
	if code != 200 || !b.Muted() || a.Muted() || state.Room != "sales" || state.ID != b.ID() || !state.Muted {
		t.Fatalf("mute: %d %s (muted %v)", code, body, b.Muted())
	}
	_, body = e.do(t, "GET", "/api/conferences", "")
	decode(t, body, &rooms)
	if p := rooms[1].Participants; !p[1].Muted || p[0].Muted {
		t.Fatalf("the listing does not show the mute: %s", body)
	}
	if code, _ := e.do(t, "POST", path+"/unmute", ""); code != 200 || b.Muted() {
		t.Fatalf("unmute: %d (muted %v)", code, b.Muted())
	}

	for _, p := range []string{
		"/api/conferences/nowhere/participants/1/mute",
		"/api/conferences/sales/participants/99/mute",
		"/api/conferences/sales/participants/x/unmute",
	} {
		if code, body := e.do(t, "POST", p, ""); code != 404 || errorOf(t, body) == "" {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}

	if code, body := e.do(t, "DELETE", path, ""); code != 204 {
		t.Fatalf("kick: %d %s", code, body)
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("the kicked participant is still in the room")
	}
	if code, _ := e.do(t, "DELETE", path, ""); code != 404 {
		t.Fatalf("kicking again: %d", code)
	}
}

// confEnv runs a PBX with the media relay and examples/dialplans/conference.lua: 8NN joins room
// NN.
func confEnv(t *testing.T) *env {
	t.Helper()
	lo := relayPorts(t, 8)
	return start(t, pbx.Config{RTPPortMin: lo, RTPPortMax: lo + 7,
		DialplanScript: filepath.Join("..", "..", "examples", "dialplans", "conference.lua")})
}

// confCaller is a phone in a conference room.
type confCaller struct {
	phone *b2buatest.Phone
	inv   *sip.Request
	ok    *sip.Response
}

// dialRoom calls 8+room from extension from and waits until the PBX answered.
func (e *env) dialRoom(t *testing.T, from, room string) confCaller {
	t.Helper()
	c := confCaller{phone: b2buatest.NewPhone(t, e.pbx.UDPAddr())}
	var msg string
	msg, c.inv = c.phone.Invite(from, "8"+room, nil, b2buatest.NewRTP(t).SDP())
	c.phone.Send(msg)
	c.ok = c.phone.WaitResponse(200)
	c.phone.Send(c.phone.InDialog("ACK", c.inv, c.ok, 1))
	return c
}

// TestEventStreamConference: a caller joining a room over SIP, muted and kicked through the API,
// shows on the event stream (conference.joined with the room, the participant's id, the caller
// and codec; conference.muted; conference.left kicked; conference.ended), and the kicked caller
// is hung up.
func TestEventStreamConference(t *testing.T) {
	e := confEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := e.openStream(t, ctx)
	c := e.dialRoom(t, "100", "07")
	conf := func() sseEvent { // the next conference event, skipping the call's
		t.Helper()
		for {
			ev, err := s.next()
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(ev.name, "conference.") {
				return ev
			}
		}
	}
	ev := conf()
	if ev.name != "conference.joined" || ev.data["kind"] != "conference.joined" || ev.data["room"] != "07" ||
		ev.data["participant"] != 1.0 || ev.data["caller"] != "100" || ev.data["codec"] != "PCMU" ||
		ev.data["moderator"] != nil || ev.data["time"] == nil {
		t.Fatalf("joined: %s %v", ev.name, ev.data)
	}
	if code, body := e.do(t, "POST", "/api/conferences/07/participants/1/mute", ""); code != 200 {
		t.Fatalf("mute: %d %s", code, body)
	}
	if ev := conf(); ev.name != "conference.muted" || ev.data["room"] != "07" || ev.data["participant"] != 1.0 {
		t.Fatalf("muted: %s %v", ev.name, ev.data)
	}
	if code, body := e.do(t, "DELETE", "/api/conferences/07/participants/1", ""); code != 204 {
		t.Fatalf("kick: %d %s", code, body)
	}
	if ev := conf(); ev.name != "conference.left" || ev.data["participant"] != 1.0 || ev.data["reason"] != "kicked" {
		t.Fatalf("left: %s %v", ev.name, ev.data)
	}
	if ev := conf(); ev.name != "conference.ended" || ev.data["room"] != "07" || ev.data["participant"] != nil {
		t.Fatalf("ended: %s %v", ev.name, ev.data)
	}
	c.phone.Respond(c.phone.WaitRequest(sip.BYE), 200, "OK", "")
	e.waitCalls(t, 0)
}
