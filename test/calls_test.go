package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/store"
)

// sippUAS registers extension ext from a free port and starts sipp's built-in UAS there for n
// calls. It returns a function that waits for the UAS to finish and fails the test if any of its
// calls failed.
func sippUAS(t *testing.T, pbxAddr, ext string, n int) func() {
	return sippCallee(t, pbxAddr, ext, n, "-sn", "uas")
}

// sippCallee is sippUAS with the scenario given as sipp arguments ("-sn", "uas" or "-sf", file).
func sippCallee(t *testing.T, pbxAddr, ext string, n int, scenario ...string) func() {
	t.Helper()
	bin := testenv.Sipp(t)
	port := fmt.Sprint(freeUDPPort(t))
	sipp(t, "register-trusted.xml", pbxAddr, "-s", ext, "-m", "1", "-p-override", port)
	dir := t.TempDir()
	if len(scenario) == 2 && scenario[0] == "-sf" {
		scenario = []string{"-sf", filepath.Join(mustAbs(t, "sipp"), scenario[1])}
	}
	cmd := exec.Command(bin, append(scenario, "-i", "127.0.0.1", "-p", port, "-m", fmt.Sprint(n),
		"-timeout", "120s", "-timeout_error", "-trace_stat", "-stf", filepath.Join(dir, "stat.csv"),
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"), pbxAddr)...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	time.Sleep(200 * time.Millisecond) // let the UAS bind its port
	return func() {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
				t.Fatalf("sipp UAS: %v\n%s", err, errs)
			}
		case <-time.After(150 * time.Second):
			t.Fatal("sipp UAS did not finish")
		}
	}
}

// sippStat reads successful and failed call counts from a sipp -trace_stat file.
func sippStat(t *testing.T, file string) (ok, failed int) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	head, last := strings.Split(lines[0], ";"), strings.Split(lines[len(lines)-1], ";")
	for i, h := range head {
		switch h {
		case "SuccessfulCall(C)":
			fmt.Sscan(last[i], &ok)
		case "FailedCall(C)":
			fmt.Sscan(last[i], &failed)
		}
	}
	return ok, failed
}

// TestSippCall: sipp's UAC calls sipp's UAS through the officepbx binary; the call is answered
// and torn down by the caller, and a CDR says so.
func TestSippCall(t *testing.T) {
	dsn := testenv.SQLiteDSN(t)
	cli(t, "ext", "add", "200", "--password", "pw200", "--db", dsn)
	srv := startServer(t, "--db", dsn, "--trust", "127.0.0.0/8")
	wait := sippUAS(t, srv.addr, "200", 1)
	sipp(t, "", srv.addr, "-sn", "uac", "-s", "200", "-m", "1", "-d", "200")
	wait()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(srv.logs(), `msg="call ended" component=b2bua`) {
		if time.Now().After(deadline) {
			t.Fatalf("call end not logged:\n%s", srv.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !regexp.MustCompile(`msg="call ended" .*status=200 disposition=answered hangup_by=caller`).MatchString(srv.logs()) {
		t.Fatalf("call did not end as answered and hung up by the caller:\n%s", srv.logs())
	}
}

// TestSippCallLoad: 1000 calls at 100 calls/s from sipp's UAC to sipp's UAS through the officepbx
// binary, with no failed call.
func TestSippCallLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load run skipped with -short")
	}
	const calls, rate = 1000, 100
	dsn := testenv.SQLiteDSN(t)
	cli(t, "ext", "add", "200", "--password", "pw200", "--db", dsn)
	srv := startServer(t, "--db", dsn, "--trust", "127.0.0.0/8")
	wait := sippUAS(t, srv.addr, "200", calls)
	dir := t.TempDir()
	stat := filepath.Join(dir, "uac.csv")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	bin := testenv.Sipp(t)
	cmd := exec.CommandContext(ctx, bin, "-sn", "uac", "-s", "200", "-i", "127.0.0.1", "-p", fmt.Sprint(freeUDPPort(t)),
		"-r", fmt.Sprint(rate), "-m", fmt.Sprint(calls), "-l", "300", "-d", "1000",
		"-timeout", "100s", "-timeout_error", "-trace_stat", "-stf", stat, "-trace_err", "-error_file", filepath.Join(dir, "errors.log"), srv.addr)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	ok, failed := sippStat(t, stat)
	if err != nil || ok != calls || failed != 0 {
		errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Fatalf("sipp UAC: %v: %d successful, %d failed of %d\n%s\n%s\nPBX log:\n%s", err, ok, failed, calls, out, errs, srv.logs())
	}
	wait()
	// Every call left exactly one record, answered.
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cdrs, err := st.CDRs(context.Background(), store.CDRFilter{Limit: 2 * calls})
		if err != nil {
			t.Fatal(err)
		}
		answered := 0
		for _, c := range cdrs {
			if c.Disposition == store.Answered {
				answered++
			}
		}
		if len(cdrs) == calls && answered == calls {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d CDRs, %d answered; want %d answered", len(cdrs), answered, calls)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(srv.logs(), "level=ERROR") {
		t.Errorf("errors logged during the load run:\n%s", grepLines(srv.logs(), "level=ERROR"))
	}
	t.Logf("%d calls at %d/s: %d successful, %d failed, %d CDRs", calls, rate, ok, failed, calls)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && len(out) < 20 {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSippCallByeFromCallee: the callee (sipp) hangs up; the caller (sipp) gets the BYE.
func TestSippCallByeFromCallee(t *testing.T) {
	dsn := testenv.SQLiteDSN(t)
	cli(t, "ext", "add", "200", "--password", "pw200", "--db", dsn)
	srv := startServer(t, "--db", dsn, "--trust", "127.0.0.0/8")
	wait := sippCallee(t, srv.addr, "200", 1, "-sf", "uas-bye.xml")
	sipp(t, "uac-wait-bye.xml", srv.addr, "-s", "200", "-m", "1")
	wait()
	waitLog(t, srv, `status=200 disposition=answered hangup_by=callee`)
}

// TestSippCallCancel: the caller (sipp) cancels while the callee (sipp) rings; the PBX cancels
// the callee and both sides end cleanly.
func TestSippCallCancel(t *testing.T) {
	dsn := testenv.SQLiteDSN(t)
	cli(t, "ext", "add", "200", "--password", "pw200", "--db", dsn)
	srv := startServer(t, "--db", dsn, "--trust", "127.0.0.0/8")
	wait := sippCallee(t, srv.addr, "200", 1, "-sf", "uas-cancelled.xml")
	sipp(t, "uac-cancel.xml", srv.addr, "-s", "200", "-m", "1")
	wait()
	waitLog(t, srv, `status=487 disposition=cancelled hangup_by=caller`)
}

func waitLog(t *testing.T, srv *server, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(5 * time.Second)
	for !re.MatchString(srv.logs()) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line matching %q:\n%s", pattern, srv.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSippCallMediaRelayed: with --rtp-ports, sipp's caller plays G.711 audio toward the PBX, the
// callee (sipp's UAS with -rtp_echo) echoes it, and both directions go through the relay: the
// call's log line counts packets from each side. The relay has an address of its own, so audio
// flows only when both sipp instances send where the PBX's rewritten SDP told them.
func TestSippCallMediaRelayed(t *testing.T) {
	dsn := testenv.SQLiteDSN(t)
	cli(t, "ext", "add", "200", "--password", "pw200", "--db", dsn)
	lo := freeUDPPort(t) &^ 1
	// The relay on 127.0.0.2, SIP on 127.0.0.1: media reaches the relay only if sipp took its
	// address from the PBX's SDP.
	srv := startServer(t, "--db", dsn, "--trust", "127.0.0.0/8", "--rtp-ip", "127.0.0.2",
		"--rtp-ports", fmt.Sprintf("%d-%d", 30000+lo%20000, 30000+lo%20000+99))
	wait := sippCallee(t, srv.addr, "200", 1, "-sn", "uas", "-rtp_echo", "-mp", fmt.Sprint(freeUDPPort(t)&^1))
	sipp(t, "uac-audio.xml", srv.addr, "-s", "200", "-m", "1", "-mp", fmt.Sprint(freeUDPPort(t)&^1))
	wait()
	waitLog(t, srv, `msg="call ended"`)
	m := regexp.MustCompile(`msg="call ended" .*caller_packets=(\d+) callee_packets=(\d+)`).FindStringSubmatch(srv.logs())
	if m == nil {
		t.Fatalf("no media counts in the call's log line:\n%s", grepLines(srv.logs(), "call ended"))
	}
	t.Logf("relayed: caller %s packets, callee %s", m[1], m[2])
	if m[1] == "0" || m[2] == "0" {
		t.Fatalf("caller sent %s packets, callee %s: media did not flow both ways through the relay:\n%s", m[1], m[2], grepLines(srv.logs(), "call ended"))
	}
}
