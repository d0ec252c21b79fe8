package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pbxkit/pbxkit/store"
)

func ptr[T any](v T) *T { return &v }

// TestQueueAgentState: pause with a reason, unpause (the reason goes), log out and in, in one
// queue or in every queue of the agent; the queue's own settings round-trip.
func TestQueueAgentState(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		for _, n := range []string{"700", "701"} {
			mustCreate(t, s, n)
		}
		for _, name := range []string{"sales", "support"} {
			q := &store.Queue{Name: name, Strategy: store.StrategyLinear, WrapUp: 5, RingTimeout: 12,
				Members: []store.QueueMember{{Extension: "701", Position: 0}, {Extension: "700", Position: 1, Penalty: 2}}}
			if err := s.CreateQueue(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.UpdateQueueMembers(ctx, "sales", "700", store.QueueMemberPatch{Paused: ptr(true), PauseReason: ptr("lunch")}); err != nil || n != 1 {
			t.Fatalf("pause in sales: %d %v", n, err)
		}
		q, err := s.Queue(ctx, "sales")
		if err != nil {
			t.Fatal(err)
		}
		if q.WrapUp != 5 || q.RingTimeout != 12 || q.Members[0].Extension != "701" || q.Members[1].Extension != "700" {
			t.Fatalf("queue %+v", q)
		}
		if m := q.Members[1]; !m.Paused || m.PauseReason != "lunch" || m.Penalty != 2 || m.LoggedOut {
			t.Fatalf("paused member %+v", m)
		}
		if n, err := s.UpdateQueueMembers(ctx, "", "700", store.QueueMemberPatch{LoggedOut: ptr(true)}); err != nil || n != 2 {
			t.Fatalf("log out everywhere: %d %v", n, err)
		}
		ms, err := s.QueueMemberships(ctx, "700")
		if err != nil || len(ms) != 2 || ms[0].Queue != "sales" || ms[1].Queue != "support" {
			t.Fatalf("memberships %v %+v", err, ms)
		}
		if !ms[0].Paused || !ms[0].LoggedOut || ms[1].Paused || !ms[1].LoggedOut {
			t.Fatalf("states %+v", ms)
		}
		if _, err := s.UpdateQueueMembers(ctx, "sales", "700", store.QueueMemberPatch{Paused: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		if ms, _ := s.QueueMemberships(ctx, "700"); ms[0].Paused || ms[0].PauseReason != "" {
			t.Fatalf("unpaused member keeps %+v", ms[0])
		}
		for name, c := range map[string]struct {
			queue, ext string
			p          store.QueueMemberPatch
			want       error
		}{
			"not a member":     {"sales", "999", store.QueueMemberPatch{Paused: ptr(true)}, store.ErrNotFound},
			"no such queue":    {"nope", "700", store.QueueMemberPatch{Paused: ptr(true)}, store.ErrNotFound},
			"nothing":          {"sales", "700", store.QueueMemberPatch{}, store.ErrInvalid},
			"reason too long":  {"sales", "700", store.QueueMemberPatch{Paused: ptr(true), PauseReason: ptr(string(make([]byte, 65)))}, store.ErrInvalid},
			"negative penalty": {"sales", "700", store.QueueMemberPatch{Penalty: ptr(-1)}, store.ErrInvalid},
		} {
			if _, err := s.UpdateQueueMembers(ctx, c.queue, c.ext, c.p); !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", name, err, c.want)
			}
		}
	})
}

func TestRingGroups(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		for _, n := range []string{"101", "102", "103"} {
			mustCreate(t, s, n)
		}
		members := func(ns ...string) []store.RingGroupMember {
			var out []store.RingGroupMember
			for _, n := range ns {
				out = append(out, store.RingGroupMember{Extension: n})
			}
			return out
		}
		g := &store.RingGroup{Number: "500", Strategy: store.GroupHunt, MemberTimeout: 10, Members: members("103", "101", "102")}
		if err := s.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]struct {
			g    store.RingGroup
			want error
		}{
			"taken":         {store.RingGroup{Number: "500", Members: members("101")}, store.ErrConflict},
			"an extension":  {store.RingGroup{Number: "101", Members: members("102")}, store.ErrConflict},
			"no members":    {store.RingGroup{Number: "501"}, store.ErrInvalid},
			"twice":         {store.RingGroup{Number: "501", Members: members("101", "101")}, store.ErrInvalid},
			"bad strategy":  {store.RingGroup{Number: "501", Strategy: "loud", Members: members("101")}, store.ErrInvalid},
			"bad timeout":   {store.RingGroup{Number: "501", MemberTimeout: -1, Members: members("101")}, store.ErrInvalid},
			"not extension": {store.RingGroup{Number: "501", Members: members("999")}, store.ErrNotFound},
			"bad number":    {store.RingGroup{Number: "5 1", Members: members("101")}, store.ErrInvalid},
		} {
			if err := s.CreateGroup(ctx, &c.g); !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", name, err, c.want)
			}
		}
		got, err := s.Group(ctx, "500")
		if err != nil {
			t.Fatal(err)
		}
		if got.Strategy != "hunt" || got.MemberTimeout != 10 || len(got.Members) != 3 ||
			got.Members[0].Extension != "103" || got.Members[1].Extension != "101" || got.Members[2].Extension != "102" {
			t.Fatalf("group %+v", got)
		}
		if err := s.DeleteExtension(ctx, "101"); err != nil {
			t.Fatal(err)
		}
		if list, err := s.Groups(ctx); err != nil || len(list) != 1 || len(list[0].Members) != 2 {
			t.Fatalf("list after a member's extension went: %v %+v", err, list)
		}
		if err := s.DeleteGroup(ctx, "500"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteGroup(ctx, "500"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		if _, err := s.Group(ctx, "500"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
}
