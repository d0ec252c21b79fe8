package media

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// OnChange is told of a real room's changes in order: joins (one muted from the start), a mute
// and an unmute, a participant hanging up, one kicked, the last moderator leaving (the others
// are taken out, the room ends), and a shutdown; never under a lock of the rooms (it lists them).
func TestConferencesOnChange(t *testing.T) {
	c := NewConferences(nil)
	defer c.Close()
	var got []string
	c.OnChange(func(ev ConferenceEvent) {
		c.List() // would deadlock under the registry's or a room's lock
		if ev.Time.IsZero() {
			t.Errorf("%s: no time", ev.Kind)
		}
		s := ev.Kind + " " + ev.Room
		if ev.Kind != ConferenceEnded {
			p := ev.Participant
			s += fmt.Sprintf(" %d %s %s muted=%v mod=%v", p.ID, p.Name, p.Codec, p.Muted, p.Moderator)
		}
		if ev.Why != "" {
			s += " " + ev.Why
		}
		got = append(got, s) // told one at a time: the test's goroutine makes every change
	})
	join := func(room, name string, codec Codec, muted, mod bool) *Participant {
		t.Helper()
		p, err := c.Join(room, ParticipantConfig{Codec: codec, Name: name, Muted: muted, Moderator: mod, Send: func([]byte) {}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	boss := join("sales", "100", PCMU, false, true)
	a := join("sales", "101", PCMA, false, false)
	b := join("sales", "102", PCMU, true, false)
	d := join("sales", "103", PCMU, false, false)
	if err := c.SetMuted("sales", a.ID(), true); err != nil {
		t.Fatal(err)
	}
	a.SetMuted(true) // no change: not told
	if err := c.SetMuted("sales", b.ID(), false); err != nil {
		t.Fatal(err)
	}
	d.Leave()
	if err := c.Kick("sales", a.ID()); err != nil {
		t.Fatal(err)
	}
	a.SetMuted(false) // out of the room: not told
	boss.Leave()      // the last moderator: B is taken out, the room ends
	<-b.Done()
	join("sales", "104", PCMU, false, false) // a new room of the same name
	if _, err := c.Join("sales", ParticipantConfig{Codec: Codec{Name: "G722", PayloadType: 9}, Send: func([]byte) {}}); err == nil {
		t.Fatal("G.722 joined") // refused: not told
	}
	c.Close()

	want := []string{
		"conference.joined sales 1 100 PCMU muted=false mod=true",
		"conference.joined sales 2 101 PCMA muted=false mod=false",
		"conference.joined sales 3 102 PCMU muted=true mod=false",
		"conference.muted sales 3 102 PCMU muted=true mod=false",
		"conference.joined sales 4 103 PCMU muted=false mod=false",
		"conference.muted sales 2 101 PCMA muted=true mod=false",
		"conference.unmuted sales 3 102 PCMU muted=false mod=false",
		"conference.left sales 4 103 PCMU muted=false mod=false hangup",
		"conference.left sales 2 101 PCMA muted=true mod=false kicked",
		"conference.left sales 1 100 PCMU muted=false mod=true hangup",
		"conference.left sales 3 102 PCMU muted=false mod=false ended",
		"conference.ended sales",
		"conference.joined sales 1 104 PCMU muted=false mod=false",
		"conference.left sales 1 104 PCMU muted=false mod=false ended",
		"conference.ended sales",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("told:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Changes made at once from many goroutines are all told, one at a time, each participant's
// joined before its muted before its left, and the room's end last.
func TestConferencesOnChangeConcurrent(t *testing.T) {
	c := NewConferences(nil)
	defer c.Close()
	var mu sync.Mutex
	var busy atomic.Bool
	seen := map[int][]string{}
	var order []string
	c.OnChange(func(ev ConferenceEvent) {
		if busy.Swap(true) {
			t.Error("told two changes at once")
		}
		mu.Lock()
		seen[ev.Participant.ID] = append(seen[ev.Participant.ID], ev.Kind)
		order = append(order, ev.Kind)
		mu.Unlock()
		busy.Store(false)
	})
	keep := join1(t, c, "big") // holds the room open until the others are done
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := join1(t, c, "big")
			p.SetMuted(true)
			p.Leave()
		}()
	}
	wg.Wait()
	keep.Leave()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 22 || order[len(order)-1] != ConferenceEnded {
		t.Fatalf("%d participants (and the room) told of, last %q", len(seen), order[len(order)-1])
	}
	for id, kinds := range seen {
		if id == 0 { // the room's end
			continue
		}
		want := []string{ConferenceJoined, ConferenceMuted, ConferenceLeft}
		if id == keep.ID() {
			want = []string{ConferenceJoined, ConferenceLeft}
		}
		if !slices.Equal(kinds, want) {
			t.Errorf("participant %d: %v", id, kinds)
		}
	}
}

func join1(t *testing.T, c *Conferences, room string) *Participant {
	p, err := c.Join(room, ParticipantConfig{Codec: PCMU, Send: func([]byte) {}})
	if err != nil {
		t.Error(err)
	}
	return p
}
