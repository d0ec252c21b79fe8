package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/sipx"
	"github.com/pbxkit/pbxkit/internal/testenv"
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
