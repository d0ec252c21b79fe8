package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/pbxkit/pbxkit/internal/testenv"
)

// The provider side of the trunk tests listens on 127.0.0.2 (the loopback network answers on
// every 127/8 address), so that the PBX tells the provider's messages from the phones' on
// 127.0.0.1.
const providerIP = "127.0.0.2"

// sippRun is a sipp process of a test: it binds ip:port, plays args, and traces its messages
// into dir.
type sippRun struct {
	dir  string
	done chan error
	cmd  *exec.Cmd
}

// startSipp starts sipp with scenario file (from test/sipp) or built-in scenario args at ip:port.
func startSipp(t *testing.T, ip string, port int, args ...string) *sippRun {
	t.Helper()
	bin := testenv.Sipp(t)
	r := &sippRun{dir: t.TempDir(), done: make(chan error, 1)}
	full := []string{"-i", ip, "-p", fmt.Sprint(port), "-timeout", "30s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(r.dir, "errors.log"), "-trace_msg"}
	for i := 0; i < len(args); i++ {
		if args[i] == "-sf" && i+1 < len(args) {
			args[i+1] = filepath.Join(mustAbs(t, "sipp"), args[i+1])
		}
	}
	r.cmd = exec.Command(bin, append(full, args...)...)
	r.cmd.Dir = r.dir
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait waits for sipp to end and fails the test unless every call succeeded.
func (r *sippRun) wait(t *testing.T, what string, srv *server) {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil {
			errs, _ := os.ReadFile(filepath.Join(r.dir, "errors.log"))
			t.Fatalf("%s: sipp %v\n%s\nmessages:\n%s\nPBX log:\n%s", what, err, errs, r.messages(t), srv.logs())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: sipp did not finish\nPBX log:\n%s", what, srv.logs())
	}
}

// messages returns sipp's message trace.
func (r *sippRun) messages(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.dir, "*_messages.log"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// TestSippTrunkOutboundChallenged: a phone dials 0555123, which is no extension; default routing
// sends it out through the trunk (prefix 0 stripped, the trunk's caller ID in From) to a sipp
// provider that challenges with 407; the PBX answers with digest, the provider answers, the two
// talk and the caller hangs up. The digest the provider received is checked against the password.
func TestSippTrunkOutboundChallenged(t *testing.T) {
	dsn := testenv.SQLiteDSN(t)
	cli(t, "ext", "add", "100", "--password", "pw100", "--db", dsn)
	provPort := freeUDPPort(t)
	cli(t, "trunk", "add", "prov", "--host", fmt.Sprintf("%s:%d", providerIP, provPort), "--user", "trunkacct",
		"--password", "trunkpw", "--caller-id", "4930999", "--prefix", "0", "--db", dsn)
	srv := startServer(t, "--db", dsn, "--trust", "127.0.0.1/32", "--log-level", "debug")
	prov := startSipp(t, providerIP, provPort, "-sf", "uas-trunk-auth.xml", "-m", "1")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("PBX log:\n%s\nprovider:\n%s", srv.logs(), prov.messages(t))
		}
	})
	time.Sleep(200 * time.Millisecond) // let the provider bind its port
	sipp(t, "", srv.addr, "-sn", "uac", "-s", "0555123", "-m", "1", "-d", "500")
	prov.wait(t, "provider", srv)
	waitLog(t, srv, `msg="call ended" .*status=200 disposition=answered hangup_by=caller`)
	checkProxyDigest(t, prov.messages(t), "trunkacct", "trunkpw")
}

// checkProxyDigest finds the INVITE with Proxy-Authorization in a sipp message trace and checks
// its digest response against the password (RFC 2617 §3.2.2).
func checkProxyDigest(t *testing.T, trace, user, password string) {
	t.Helper()
	var method, auth string
	sc := bufio.NewScanner(strings.NewReader(trace))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "INVITE ") {
			method = "INVITE"
		}
		if v, ok := strings.CutPrefix(line, "Proxy-Authorization:"); ok && method == "INVITE" {
			auth = strings.TrimSpace(v)
			break
		}
	}
	if auth == "" {
		t.Fatalf("no INVITE with Proxy-Authorization in the provider's trace:\n%s", trace)
	}
	cred, err := digest.ParseCredentials(auth)
	if err != nil {
		t.Fatal(err)
	}
	want, err := digest.Digest(&digest.Challenge{Realm: cred.Realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, QOP: []string{cred.QOP}},
		digest.Options{Method: method, URI: cred.URI, Username: user, Password: password, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil {
		t.Fatal(err)
	}
	if cred.Username != user || cred.Response != want.Response {
		t.Fatalf("Proxy-Authorization %s: want user %s and response %s", auth, user, want.Response)
	}
}

// TestSippTrunkRegisters: a trunk with --register registers at a sipp registrar that challenges
// with 401 and checks the digest, is granted 2 s, refreshes in time (challenged and checked
// again), and trunk list shows it registered.
func TestSippTrunkRegisters(t *testing.T) {
	dsn := testenv.SQLiteDSN(t)
	provPort := freeUDPPort(t)
	cli(t, "trunk", "add", "reg", "--host", fmt.Sprintf("%s:%d", providerIP, provPort), "--user", "trunkacct",
		"--password", "trunkpw", "--register", "--db", dsn)
	registrar := startSipp(t, providerIP, provPort, "-sf", "uas-trunk-registrar.xml", "-m", "1")
	time.Sleep(200 * time.Millisecond)
	srv := startServer(t, "--db", dsn)
	registrar.wait(t, "registrar", srv)
	waitLog(t, srv, `(?s)msg="trunk registered" component=trunks trunk=reg detail="granted 2s".*msg="trunk registered" component=trunks trunk=reg detail="granted 1m0s"`)
	list := cli(t, "trunk", "list", "--db", dsn)
	if !regexp.MustCompile(`(?m)^reg\s+127\.0\.0\.2:\d+\s+trunkacct\s+on\s+-\s+-\s+registered \(until `).MatchString(list) {
		t.Fatalf("trunk list:\n%s", list)
	}
}

// TestSippTrunkIncoming: the provider calls the PBX as it would call the Contact the PBX
// registered (Request-URI user: the trunk's account; To: the dialled extension), without
// credentials and with no --trust; the call reaches extension 200, a registered sipp UAS, and
// ends cleanly.
func TestSippTrunkIncoming(t *testing.T) {
	dsn := testenv.SQLiteDSN(t)
	cli(t, "ext", "add", "200", "--password", "pw200", "--db", dsn)
	cli(t, "trunk", "add", "prov", "--host", providerIP, "--user", "trunkacct", "--password", "trunkpw", "--db", dsn)
	srv := startServer(t, "--db", dsn)
	port := freeUDPPort(t)
	sipp(t, "register.xml", srv.addr, "-s", "200", "-au", "200", "-ap", "pw200", "-m", "1", "-p-override", fmt.Sprint(port))
	uas := startSipp(t, "127.0.0.1", port, "-sn", "uas", "-m", "1")
	time.Sleep(200 * time.Millisecond)
	caller := startSipp(t, providerIP, freeUDPPort(t), "-sf", "uac-trunk-in.xml", "-s", "200", "-m", "1", srv.addr)
	caller.wait(t, "provider calling in", srv)
	uas.wait(t, "extension 200", srv)
	waitLog(t, srv, `msg="call from trunk" trunk=prov src=127\.0\.0\.2:\d+ dialled=200`)
	waitLog(t, srv, `msg="call ended" .*status=200 disposition=answered hangup_by=caller`)
}
