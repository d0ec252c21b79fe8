//go:build linux

package pbx_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
)

// emfileChild names the environment variable that makes TestEMFILEChild run.
const emfileChild = "PBXKIT_TEST_EMFILE_CHILD"

// TestTCPListenerSurvivesEMFILE is issue 12's failure itself, test-sized: idle connections from
// one source, with the connection limits off, use up the process's file descriptors. The TCP
// listener must not stop: it backs off while Health reports it, and once descriptors are free
// again a phone registers over a new TCP connection. The run lowers RLIMIT_NOFILE, which is
// process-wide, so it happens in a child process (TestEMFILEChild).
func TestTCPListenerSurvivesEMFILE(t *testing.T) {
	if os.Getenv(emfileChild) != "" {
		t.Skip("in the child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEMFILEChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), emfileChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestEMFILEChild")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func TestEMFILEChild(t *testing.T) {
	if os.Getenv(emfileChild) == "" {
		t.Skip("run by TestTCPListenerSurvivesEMFILE")
	}
	tp := startPBX(t, pbx.Config{MaxConnections: -1, MaxConnectionsPerSource: -1})
	tp.addExt(t, "201", "pw201")

	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := orig
	low.Cur = uint64(len(fds) + 40)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	t.Logf("RLIMIT_NOFILE %d, %d open", low.Cur, len(fds))

	// Each connection takes two descriptors here: the dialling end and the accepted one. Dial
	// until the process has none left.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for {
		c, err := net.DialTimeout("tcp", tp.TCPAddr().String(), 5*time.Second)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatalf("dial %d: %v", len(held)+1, err)
			}
			break
		}
		held = append(held, c)
		if len(held) > 1000 {
			t.Fatal("no EMFILE after 1000 connections")
		}
	}
	eventually(t, 5*time.Second, "Health reports the failing accept", func() bool { return errors.Is(tp.Health(), pbx.ErrAcceptFailing) })
	t.Logf("%d connections; health: %v", len(held), tp.Health())
	time.Sleep(500 * time.Millisecond) // a few retries
	if !errors.Is(tp.Health(), pbx.ErrAcceptFailing) || !bytes.Contains([]byte(tp.logs.String()), []byte("tcp accept failing; backing off")) {
		t.Fatalf("health %v; log:\n%s", tp.Health(), tp.logs.String())
	}

	// The flood goes away; the listener, still under the same limit, serves again.
	for _, c := range held {
		c.Close()
	}
	held = nil
	eventually(t, 5*time.Second, "Health clear again", func() bool { return tp.Health() == nil })
	phone := connectFrom(t, tp, "127.0.0.1")
	if code := phone.register("201", "pw201", 600); code != 200 {
		t.Fatalf("REGISTER over TCP after the exhaustion: %d", code)
	}
	if n := metricSum(t, tp.Metrics(), "pbxkit_sip_accept_errors_total", nil); n < 2 {
		t.Fatalf("%v accept errors counted", n)
	}
	if err := tp.Health(); err != nil {
		t.Fatalf("health at the end: %v", err)
	}
}
