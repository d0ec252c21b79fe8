package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/sipx"
	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// TestMinimal runs the example's main in this process, on a free port and a SQLite file made
// here as "officepbx ext add" would make it, and places one call through it as phones do: 100
// and 101 register (digest), 102 dials 0, both ring, 101 answers, 100 is cancelled, 102 hangs up.
func TestMinimal(t *testing.T) {
	dsn := "sqlite:" + t.TempDir() + "/minimal.db"
	passwords := map[string]string{"100": "pw-100-secret", "101": "pw-101-secret", "102": "pw-102-secret"}
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	for number, pw := range passwords {
		e := &store.Extension{Number: number, Enabled: true}
		if err := e.SetPassword(pbx.DefaultDomain, pw); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateExtension(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	port := freePort(t)
	os.Args = []string{"minimal", "-port", port, "-db", dsn}
	flag.CommandLine = flag.NewFlagSet("minimal", flag.ExitOnError) // main defines its flags anew
	done := make(chan struct{})
	go func() { defer close(done); main() }()
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: atoi(t, port)}
	waitServing(t, addr.String())
	t.Cleanup(func() {
		// main stops on SIGINT as it would in a terminal (it is listening for it by now).
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("main did not return after SIGINT")
		}
	})

	reception, office, caller := b2buatest.NewPhone(t, addr), b2buatest.NewPhone(t, addr), b2buatest.NewPhone(t, addr)
	register(t, reception, "100", passwords["100"])
	register(t, office, "101", passwords["101"])
	if res := caller.Do(caller.Build(b2buatest.Request{Method: "OPTIONS", From: "102", To: "102"})); res.StatusCode != 200 {
		t.Fatalf("OPTIONS: got %d, want 200", res.StatusCode)
	}

	// 102 dials 0: challenged (407), then sent again with credentials.
	_, inv := caller.Invite("102", "0", nil)
	caller.Send(inv.String())
	challenge := caller.WaitResponse(407)
	caller.AckFinal(inv, challenge)
	inv = inv.Clone()
	inv.CSeq().SeqNo = 2
	inv.Via().Params.Add("branch", fmt.Sprintf("z9hG4bK-minimal-%d", rand.Int64()))
	if err := sipx.Authorize(inv, challenge, "102", passwords["102"]); err != nil {
		t.Fatal(err)
	}
	caller.Send(inv.String())

	// route rings both reception phones; 101 answers, 100 is cancelled.
	at100, at101 := reception.WaitRequest(sip.INVITE), office.WaitRequest(sip.INVITE)
	for _, r := range []*sip.Request{at100, at101} {
		if r.Recipient.User != "100" && r.Recipient.User != "101" {
			t.Errorf("callee's INVITE to %s, want 100 or 101", r.Recipient.String())
		}
	}
	reception.Respond(at100, 180, "Ringing", "")
	caller.WaitResponse(180)
	office.Respond(at101, 200, "OK", b2buatest.CalleeSDP)
	ok := caller.WaitResponse(200)
	office.WaitRequest(sip.ACK)
	reception.AcceptCancel(at100)
	caller.Send(caller.InDialog("ACK", inv, ok, 2))
	b2buatest.HangUp(t, caller, office, inv, ok, 3)
}

// register binds ext to the phone: REGISTER, 401, REGISTER with credentials, 200.
func register(t *testing.T, ph *b2buatest.Phone, ext, password string) {
	t.Helper()
	r := b2buatest.Request{Method: "REGISTER", URI: "sip:pbx.test", From: ext, To: ext, CallID: "reg-" + ext + "@minimal",
		Headers: []string{"Contact: <" + ph.Contact(ext) + ">", "Expires: 60"}}
	res := ph.Do(ph.Build(r))
	if res.StatusCode != 401 {
		t.Fatalf("REGISTER %s: got %d, want 401", ext, res.StatusCode)
	}
	r.CSeq = 2
	m, err := sip.ParseMessage([]byte(ph.Build(r)))
	if err != nil {
		t.Fatal(err)
	}
	req := m.(*sip.Request)
	if err := sipx.Authorize(req, res, ext, password); err != nil {
		t.Fatal(err)
	}
	if res := ph.Do(req.String()); res.StatusCode != 200 {
		t.Fatalf("REGISTER %s with credentials: got %d, want 200", ext, res.StatusCode)
	}
}

// freePort finds a port free on UDP and TCP of every address, for main's -port flag.
func freePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(u.LocalAddr().(*net.UDPAddr).Port)
		l, err := net.Listen("tcp4", "0.0.0.0:"+port)
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return ""
}

// waitServing sends OPTIONS until the PBX answers (main opens the database, then binds).
func waitServing(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		fmt.Fprintf(conn, "OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-wait%d;rport\r\n"+
			"Max-Forwards: 70\r\nFrom: <sip:probe@pbx.test>;tag=1\r\nTo: <sip:pbx.test>\r\nCall-ID: wait-%d\r\n"+
			"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", conn.LocalAddr(), rand.Int64(), rand.Int64())
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && n > 0 {
			return
		}
	}
	t.Fatal("the PBX did not answer OPTIONS within 10 s")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
