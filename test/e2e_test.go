// Package test holds end-to-end suites: the officepbx binary, driven as a subprocess, with sipp
// and raw SIP clients talking to it over real sockets.
package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
)

var officepbx string // path of the binary built by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "officepbx-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	officepbx = filepath.Join(dir, "officepbx")
	build := exec.Command("go", "build", "-race", "-o", officepbx, "../examples/officepbx")
	if os.Getenv("PBX_E2E_NORACE") != "" {
		build = exec.Command("go", "build", "-o", officepbx, "../examples/officepbx")
	}
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building officepbx:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs an officepbx management command and returns its output.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(officepbx, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("officepbx %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// server is a running "officepbx serve".
type server struct {
	cmd  *exec.Cmd
	addr string // UDP and TCP
	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
}

func (s *server) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

var listening = regexp.MustCompile(`msg="pbx listening" udp=(\S+)`)

// startServer runs officepbx serve on a free port and waits until it listens. It is stopped with
// SIGTERM when the test ends, and must exit cleanly.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	s := &server{done: make(chan error, 1)}
	s.cmd = exec.Command(officepbx, append([]string{"serve", "--sip", "127.0.0.1:0"}, args...)...)
	s.cmd.Dir = t.TempDir() // what serve makes by default (officepbx.records) stays out of the tree
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				addrc <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
		s.done <- s.cmd.Wait()
	}()
	select {
	case s.addr = <-addrc:
	case err := <-s.done:
		t.Fatalf("officepbx exited before listening: %v\n%s", err, s.logs())
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		t.Fatalf("officepbx did not listen within 30s:\n%s", s.logs())
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *server) stop(t *testing.T) {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("officepbx exited with %v after SIGTERM:\n%s", err, s.logs())
		}
		if strings.Contains(s.logs(), "DATA RACE") {
			t.Errorf("race detected in officepbx:\n%s", s.logs())
		}
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		t.Errorf("officepbx did not stop within 15s of SIGTERM:\n%s", s.logs())
	}
}

// freeUDPPort is a port free for UDP and TCP on 127.0.0.1 (sipp over TCP listens on it too),
// below the kernel's ephemeral range (32768 up): a connection made elsewhere on the machine
// meanwhile (Postgres clients, phones) cannot take it before sipp binds it. Ports 20000-30000
// are the phones' (freePortRange).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	for tries := 0; tries < 200; tries++ {
		port := 30000 + rand.IntN(2700)
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port for sipp")
	return 0
}

// sipp runs a scenario from test/sipp against addr and fails the test if sipp reports failure.
func sipp(t *testing.T, scenario, addr string, args ...string) {
	t.Helper()
	bin := testenv.Sipp(t)
	dir := t.TempDir()
	var full []string
	if scenario != "" {
		full = append(full, "-sf", filepath.Join(mustAbs(t, "sipp"), scenario))
	}
	port := fmt.Sprint(freeUDPPort(t))
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-p-override" { // the caller picks the local port
			port = args[i+1]
			args = append(args[:i:i], args[i+2:]...)
			break
		}
	}
	full = append(full, "-i", "127.0.0.1", "-p", port,
		"-timeout", "30s", "-timeout_error", "-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_screen", "-screen_file", filepath.Join(dir, "screen.log"))
	full = append(append(full, args...), addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		screen, _ := os.ReadFile(filepath.Join(dir, "screen.log"))
		t.Fatalf("sipp %s: %v\n%s\nerrors:\n%s\nscreen:\n%s", scenario, err, out, errs, screen)
	}
}

// TestSippRegisterDigest registers with sipp through the officepbx binary, answering the digest
// challenge, on the embedded SQLite database and on Postgres, over UDP and TCP.
func TestSippRegisterDigest(t *testing.T) {
	dbs := map[string]func(testing.TB) string{
		"sqlite":   testenv.SQLiteDSN,
		"postgres": testenv.PostgresDSN,
	}
	for _, tc := range []struct{ name, db, transport string }{
		{"sqlite-udp", "sqlite", "u1"}, {"postgres-udp", "postgres", "u1"}, {"sqlite-tcp", "sqlite", "t1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := dbs[tc.db](t)
			if out := cli(t, "ext", "add", "100", "--password", "s3cret", "--name", "Reception", "--db", dsn); !strings.Contains(out, "extension 100 added") {
				t.Fatalf("ext add: %s", out)
			}
			srv := startServer(t, "--db", dsn)
			sipp(t, "register.xml", srv.addr, "-t", tc.transport, "-s", "100", "-au", "100", "-ap", "s3cret", "-m", "1", "-l", "1")
			list := cli(t, "ext", "list", "--db", dsn)
			if !regexp.MustCompile(`(?m)^100\s+Reception\s+on\s+off\s+-\s+-\s+-\s+off\s+off\s+sip:100@[^,\s]+\s*$`).MatchString(list) {
				t.Fatalf("ext list after sipp registered:\n%s", list)
			}
			if !strings.Contains(srv.logs(), `msg=registered ext=100`) {
				t.Fatalf("no registration logged:\n%s", srv.logs())
			}
		})
	}
}

// TestSippRegisterWrongPassword: sipp with the wrong password is challenged again, and the failure
// is logged with the source IP.
func TestSippRegisterWrongPassword(t *testing.T) {
	dsn := testenv.SQLiteDSN(t)
	cli(t, "ext", "add", "100", "--password", "right", "--db", dsn)
	srv := startServer(t, "--db", dsn)
	bin := testenv.Sipp(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "-sf", filepath.Join(mustAbs(t, "sipp"), "register.xml"), "-i", "127.0.0.1", "-p", fmt.Sprint(freeUDPPort(t)),
		"-s", "100", "-au", "100", "-ap", "wrong", "-m", "1", "-timeout", "20s", "-timeout_error", srv.addr)
	cmd.Dir = dir
	if err := cmd.Run(); err == nil {
		t.Fatal("sipp registered with a wrong password")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(srv.logs(), `msg="sip auth failed" component=auth src_ip=127.0.0.1 user=100`) {
		if time.Now().After(deadline) {
			t.Fatalf("failure not logged with the source IP:\n%s", srv.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
