package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/sipx"
	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/store"
)

// TestServeBanFlags: --auth-fail-limit bans a source after that many wrong passwords (the
// default would allow 10), and bad durations are refused naming the flag.
func TestServeBanFlags(t *testing.T) {
	db := testenv.SQLiteDSN(t)
	if code, out, errs := officepbx(t, "ext", "add", "100", "--password", "pw100-secret", "--db", db); code != 0 {
		t.Fatalf("ext add: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs := officepbx(t, "serve", "--db", db, "--auth-ban-time", "-1m")
	if code != 2 || !strings.Contains(errs, "--auth-ban-time") {
		t.Fatalf("negative --auth-ban-time: exit %d, %s", code, errs)
	}
	addr := serveInTest(t, "--sip", "127.0.0.1:0", "--db", db, "--auth-fail-limit", "2", "--auth-ban-time", "1m")
	phone := b2buatest.NewPhone(t, addr)
	register := func(cseq int, callID string) *sip.Response {
		return phone.Do(phone.Build(b2buatest.Request{Method: "REGISTER", URI: "sip:pbx.test", From: "100", To: "100",
			CallID: callID, CSeq: cseq, Headers: []string{"Contact: <" + phone.Contact("100") + ">"}}))
	}
	for i := range 2 {
		callID := fmt.Sprintf("guess-%d", i)
		chal := register(1, callID)
		if chal.StatusCode != 401 {
			t.Fatalf("guess %d: %d before credentials", i, chal.StatusCode)
		}
		req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "pbx.test"})
		if err := sipx.Authorize(req, chal, "100", "wrong"); err != nil {
			t.Fatal(err)
		}
		res := phone.Do(phone.Build(b2buatest.Request{Method: "REGISTER", URI: "sip:pbx.test", From: "100", To: "100",
			CallID: callID, CSeq: 2, Headers: []string{"Contact: <" + phone.Contact("100") + ">",
				"Authorization: " + req.GetHeader("Authorization").Value()}}))
		if res.StatusCode != 401 && res.StatusCode != 403 {
			t.Fatalf("guess %d with a wrong password: %d", i, res.StatusCode)
		}
	}
	if res := register(1, "after-ban"); res.StatusCode != 403 {
		t.Fatalf("after 2 wrong passwords with --auth-fail-limit 2: %d, want 403 (banned)", res.StatusCode)
	}
}

// TestCLIBans: ban list shows the bans in force with the node that made each, ban rm lifts one
// (then it is gone from the list); an ended or unknown ban is not found (exit 1, naming the IP)
// and a malformed IP is a usage error (exit 2). Both databases.
func TestCLIBans(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": testenv.SQLiteDSN, "postgres": testenv.PostgresDSN} {
		t.Run(name, func(t *testing.T) {
			db := dsn(t)
			ctx := context.Background()
			s, err := store.Open(ctx, db, store.WithNodeID("pbx1"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mustRun(t, 0, "^no bans in force\n$", "", "ban", "list", "--db", db)
			for ip, until := range map[string]time.Time{"192.0.2.7": time.Now().Add(5 * time.Minute),
				"2001:db8::7": time.Now().Add(time.Hour), "198.51.100.9": time.Now().Add(-time.Minute)} {
				if err := s.PutBan(ctx, ip, until); err != nil {
					t.Fatal(err)
				}
			}
			mustRun(t, 1, "", "ban rm: no ban of 198.51.100.9 in force", "ban", "rm", "198.51.100.9", "--db", db)
			mustRun(t, 0, `^IP\s+UNTIL\s+REMAINING\s+NODE\n192\.0\.2\.7\s+\S+ \S+\s+[0-9hms]+\s+pbx1\n2001:db8::7\s+\S+ \S+\s+[0-9hms]+\s+pbx1\n$`, "",
				"ban", "list", "--db", db)
			mustRun(t, 0, "^ban of 192.0.2.7 lifted\n$", "", "ban", "rm", "192.0.2.7", "--db", db)
			mustRun(t, 0, `^IP\s+UNTIL\s+REMAINING\s+NODE\n2001:db8::7\s`, "", "ban", "list", "--db", db)
			mustRun(t, 0, "ban of 2001:db8::7 lifted", "", "ban", "rm", "--db", db, "2001:db8::7")
			mustRun(t, 0, "^no bans in force\n$", "", "ban", "list", "--db", db)
			mustRun(t, 1, "", "ban rm: no ban of 192.0.2.7 in force", "ban", "rm", "192.0.2.7", "--db", db)
			mustRun(t, 2, "", `ban rm: "not-an-ip" is not an IP address`, "ban", "rm", "not-an-ip", "--db", db)
			mustRun(t, 2, "", "ban rm: want exactly one IP address, got 0 arguments", "ban", "rm", "--db", db)
			mustRun(t, 2, "", "ban list takes no arguments", "ban", "list", "192.0.2.7", "--db", db)
		})
	}
}
