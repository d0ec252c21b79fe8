package pbx_test

import (
	"errors"
	"testing"

	"github.com/pbxkit/pbxkit/media"
	"github.com/pbxkit/pbxkit/pbx"
)

// The registry makes a room with its first participant, forgets it when the last one leaves,
// mutes and kicks by room and ID, and closes every room when the PBX shuts down.
func TestConferencesRegistry(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	c := tp.Conferences()
	join := func(room, name string, codec media.Codec) *media.Participant {
		t.Helper()
		p, err := c.Join(room, media.ParticipantConfig{Codec: codec, Name: name, Send: func([]byte) {}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a1 := join("sales", "101", media.PCMU)
	a2 := join("sales", "102", media.PCMA)
	b1 := join("board", "201", media.PCMU)
	rooms := c.List()
	if len(rooms) != 2 || rooms[0].Name != "board" || rooms[1].Name != "sales" || len(rooms[1].Participants) != 2 ||
		rooms[1].Participants[1].Name != "102" || rooms[1].Participants[1].Codec != "PCMA" {
		t.Fatalf("rooms: %+v", rooms)
	}

	if err := c.SetMuted("sales", a2.ID(), true); err != nil || !a2.Muted() {
		t.Fatalf("mute: %v, muted %v", err, a2.Muted())
	}
	if err := c.SetMuted("sales", 99, true); !errors.Is(err, pbx.ErrNoParticipant) {
		t.Fatalf("muting nobody: %v", err)
	}
	if err := c.Kick("nowhere", 1); !errors.Is(err, pbx.ErrNoConference) {
		t.Fatalf("kicking in no room: %v", err)
	}
	if err := c.Kick("sales", a1.ID()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a1.Done():
	default:
		t.Fatal("a kicked participant's Done is open")
	}

	a2.Leave() // the last in "sales": the room closes and is forgotten
	if rooms := c.List(); len(rooms) != 1 || rooms[0].Name != "board" {
		t.Fatalf("rooms after sales emptied: %+v", rooms)
	}
	again := join("sales", "103", media.PCMU) // a new room of the same name
	if again.ID() != 1 {
		t.Fatalf("the new room's first participant has ID %d", again.ID())
	}
	if _, err := c.Join("hifi", media.ParticipantConfig{Codec: media.Codec{Name: "G722", PayloadType: 9},
		Send: func([]byte) {}}); !errors.Is(err, media.ErrNoCodec) {
		t.Fatalf("G.722: %v", err)
	}
	if rooms := c.List(); len(rooms) != 2 {
		t.Fatalf("a refused participant left a room behind: %+v", rooms)
	}

	tp.Shutdown(t.Context())
	for _, p := range []*media.Participant{b1, again} {
		select {
		case <-p.Done():
		default:
			t.Fatal("a participant is still in a room after shutdown")
		}
	}
	if _, err := c.Join("sales", media.ParticipantConfig{Codec: media.PCMU, Send: func([]byte) {}}); !errors.Is(err, pbx.ErrShutdown) {
		t.Fatalf("joining after shutdown: %v", err)
	}
}
