package admin_test

import (
	"fmt"
	"testing"

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
