package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
)

// TestBans: GET /api/bans lists the bans in force by IP (an ended one is not shown); DELETE
// lifts one (204, logged, gone from the list); lifting it again, or an ended ban, is 404 and a
// malformed IP 400, each with a JSON error naming the IP.
func TestBans(t *testing.T) {
	e := start(t, pbx.Config{})
	ctx := context.Background()
	if code, body := e.do(t, "GET", "/api/bans", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("no bans: %d %s", code, body)
	}
	until := time.Now().Add(5 * time.Minute)
	for ip, u := range map[string]time.Time{"192.0.2.7": until, "2001:db8::7": until.Add(time.Hour), "198.51.100.9": time.Now().Add(-time.Minute)} {
		if err := e.store.PutBan(ctx, ip, u); err != nil {
			t.Fatal(err)
		}
	}
	bans := listBans(t, e)
	if len(bans) != 2 || bans[0].IP != "192.0.2.7" || bans[1].IP != "2001:db8::7" {
		t.Fatalf("bans: %+v", bans)
	}
	if d := bans[0].Until.Sub(until); d < -time.Second || d > time.Second || bans[0].CreatedAt.IsZero() || bans[0].NodeID == nil {
		t.Fatalf("ban of 192.0.2.7: %+v, want until %v", bans[0], until)
	}
	if code, body := e.do(t, "DELETE", "/api/bans/198.51.100.9", ""); code != 404 || !strings.Contains(errorOf(t, body), "198.51.100.9") {
		t.Fatalf("lift an ended ban: %d %s", code, body)
	}
	if code, body := e.do(t, "DELETE", "/api/bans/192.0.2.7", ""); code != 204 || body != "" {
		t.Fatalf("lift: %d %s", code, body)
	}
	if !strings.Contains(e.logs.String(), `msg="admin API: ban lifted" ip=192.0.2.7`) {
		t.Errorf("the lift is not logged:\n%s", e.logs.String())
	}
	if bans := listBans(t, e); len(bans) != 1 || bans[0].IP != "2001:db8::7" {
		t.Fatalf("after the lift: %+v", bans)
	}
	if code, body := e.do(t, "DELETE", "/api/bans/192.0.2.7", ""); code != 404 || !strings.Contains(errorOf(t, body), "no ban of 192.0.2.7") {
		t.Fatalf("lift again: %d %s", code, body)
	}
	if code, body := e.do(t, "DELETE", "/api/bans/not-an-ip", ""); code != 400 || !strings.Contains(errorOf(t, body), `"not-an-ip" is not an IP address`) {
		t.Fatalf("malformed IP: %d %s", code, body)
	}
	if code, body := e.do(t, "DELETE", "/api/bans/2001:db8::7", ""); code != 204 {
		t.Fatalf("lift an IPv6 ban: %d %s", code, body)
	}
	if bans := listBans(t, e); len(bans) != 0 {
		t.Fatalf("after lifting both: %+v", bans)
	}
}

type banJSON struct {
	IP        string    `json:"ip"`
	Until     time.Time `json:"until"`
	NodeID    *string   `json:"node_id"` // nil when the field is missing
	CreatedAt time.Time `json:"created_at"`
}

func listBans(t *testing.T, e *env) []banJSON {
	t.Helper()
	code, body := e.do(t, "GET", "/api/bans", "")
	if code != 200 {
		t.Fatalf("GET /api/bans: %d %s", code, body)
	}
	var bans []banJSON
	decode(t, body, &bans)
	return bans
}
