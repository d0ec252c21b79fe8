package media

import (
	"errors"
	"testing"
)

// The registry makes a room with its first participant, forgets it when the last one leaves,
// mutes and kicks by room and ID, and closes every room when it closes.
func TestConferences(t *testing.T) {
	c := NewConferences(nil)
	defer c.Close()
	join := func(room, name string, codec Codec) *Participant {
		t.Helper()
		p, err := c.Join(room, ParticipantConfig{Codec: codec, Name: name, Send: func([]byte) {}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a1 := join("sales", "101", PCMU)
	a2 := join("sales", "102", PCMA)
	b1 := join("board", "201", PCMU)
	if r, n := c.Counts(); r != 2 || n != 3 {
		t.Fatalf("counts: %d rooms, %d participants", r, n)
	}
	rooms := c.List()
	if len(rooms) != 2 || rooms[0].Name != "board" || rooms[1].Name != "sales" || len(rooms[1].Participants) != 2 ||
		rooms[1].Participants[1].Name != "102" || rooms[1].Participants[1].Codec != "PCMA" {
		t.Fatalf("rooms: %+v", rooms)
	}

	if err := c.SetMuted("sales", a2.ID(), true); err != nil || !a2.Muted() {
		t.Fatalf("mute: %v, muted %v", err, a2.Muted())
	}
	if err := c.SetMuted("sales", 99, true); !errors.Is(err, ErrNoParticipant) {
		t.Fatalf("muting nobody: %v", err)
	}
	if err := c.Kick("nowhere", 1); !errors.Is(err, ErrNoConference) {
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
	again := join("sales", "103", PCMU) // a new room of the same name
	if again.ID() != 1 {
		t.Fatalf("the new room's first participant has ID %d", again.ID())
	}
	if _, err := c.Join("hifi", ParticipantConfig{Codec: Codec{Name: "G722", PayloadType: 9},
		Send: func([]byte) {}}); !errors.Is(err, ErrNoCodec) {
		t.Fatalf("G.722: %v", err)
	}
	if rooms := c.List(); len(rooms) != 2 {
		t.Fatalf("a refused participant left a room behind: %+v", rooms)
	}

	c.Close()
	for _, p := range []*Participant{b1, again} {
		select {
		case <-p.Done():
		default:
			t.Fatal("a participant is still in a room after shutdown")
		}
	}
	if _, err := c.Join("sales", ParticipantConfig{Codec: PCMU, Send: func([]byte) {}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("joining after shutdown: %v", err)
	}
}
