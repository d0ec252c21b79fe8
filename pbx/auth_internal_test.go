package pbx

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// banStore is the shared ban table as a banList writes it; put fails when failPut is set.
type banStore struct {
	clusterStore
	failPut bool
}

func (s *banStore) PutBan(context.Context, string, time.Time) error {
	if s.failPut {
		return errors.New("database away")
	}
	return nil
}

// TestBanLiftedOnlyWhenPublished: a ban the node published and that is gone from the shared list
// was lifted, and ends here; a new ban of the same source, not (yet) published, stays whatever
// the list says.
func TestBanLiftedOnlyWhenPublished(t *testing.T) {
	shared := &banStore{}
	b := &banList{limit: 2, window: time.Minute, ban: 5 * time.Minute, share: shared, ips: map[netip.Addr]*failures{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ip := netip.MustParseAddr("192.0.2.7")
	ban := func(now time.Time) {
		t.Helper()
		b.fail(ip, now)
		if !b.fail(ip, now) {
			t.Fatal("no ban after two failures")
		}
		b.publish(ip, now.Add(b.ban), log)
	}
	start := time.Now()
	ban(start)
	b.setShared(nil, time.Now()) // lifted
	if b.banned(ip, start) {
		t.Fatal("a lifted ban still holds")
	}
	ban(start)
	later := start.Add(6 * time.Minute) // the ban ended; the source fails again at once
	shared.failPut = true
	ban(later)
	b.setShared([]store.Ban{}, time.Now()) // the list, without the ban that was never written
	if !b.banned(ip, later) {
		t.Fatal("a ban that was not published was taken for lifted")
	}
}
