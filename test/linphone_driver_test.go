package test

// A driver for linphonec 5.1 (Debian's linphone-cli), the console front-end of liblinphone, run as
// a subprocess and driven through its standard input, one command a line ("call 103",
// "pause 1", "transfer 1 --to-call 2"); what it prints on its standard output ("Call 1 with
// sip:... connected.") tells the test what happened. The tests use it where baresip 1.0 falls
// short: baresip's menu has blind transfer only, linphonec does attended transfer (REFER whose
// Refer-To carries Replaces, RFC 3891) by itself.
//
// linphonec runs with HOME in its own folder (its database, ZRTP cache and configuration stay
// there), without a sound card ("soundcard use files": it sends a tone from a WAV file and writes
// what it receives to another, which the tests read to tell whose audio reached it), with G.711
// µ-law only, bound to 127.0.0.1 on a SIP port (UDP or TCP) and an RTP port range of its own.
// liblinphone's debug log, with every SIP message, goes to linphone.log in that folder. When the
// test binary dies without its clean-ups, linphonec reads end-of-file on its standard input and
// quits by itself.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
)

// linphonecBin returns the path of linphonec, or skips the test (fails it under CI=true).
func linphonecBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("linphonec")
	if err != nil {
		msg := "linphonec is not on PATH: install it (apt-get install -y linphone-cli)"
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// linphone is one running linphonec.
type linphone struct {
	t       *testing.T
	spec    phoneSpec
	pbx     string // host:port of the PBX
	dir     string
	sipPort int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	exited  chan struct{} // closed when the process has been reaped
	waitErr error

	mu     sync.Mutex
	lines  []string      // what linphonec printed, a line each
	next   int           // lines before next were consumed by await
	signal chan struct{} // closed and replaced when a line arrives or the output ends
	eof    bool
}

// startLinphone writes a configuration for spec, starts linphonec on a free SIP port without a
// sound card, sending a tone of spec.ToneHz, and registers it with the PBX at pbxAddr. It is
// stopped when the test ends.
func startLinphone(t *testing.T, pbxAddr string, spec phoneSpec) *linphone {
	t.Helper()
	bin := linphonecBin(t)
	if spec.Transport == "" {
		spec.Transport = "udp"
	}
	p := &linphone{t: t, spec: spec, pbx: pbxAddr, dir: t.TempDir(), exited: make(chan struct{}), signal: make(chan struct{})}
	p.sipPort, _ = phonePorts(t)
	rtpLo := freePortRange(t, 40)
	// liblinphone does not start (its global state stays "Startup", no SIP socket) when it
	// cannot open its database in $HOME/.local/share/linphone. Its PulseAudio client leaves a
	// pulse-XXXX folder in /tmp at every start unless XDG_RUNTIME_DIR names a folder.
	for _, d := range []string{filepath.Join(".local", "share", "linphone"), "run"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeToneWAV(filepath.Join(p.dir, "tone.wav"), spec.ToneHz, phoneToneSeconds); err != nil {
		t.Fatal(err)
	}
	udp, tcp := p.sipPort, 0 // 0: transport off (-1 would be a random port)
	if spec.Transport == "tcp" {
		udp, tcp = 0, p.sipPort
	}
	// auto_net_state_mon=0: otherwise liblinphone, watching the host's network interfaces,
	// declares the network down after 5 s here and drops its connections;
	// register_only_when_network_is_up=0 for the same reason. Video is off in linphonec unless
	// asked for.
	rc := fmt.Sprintf(`# written by pbxkit's test/linphone_driver_test.go
[sip]
bind_address=127.0.0.1
use_ipv6=0
sip_port=%d
sip_tcp_port=%d
sip_tls_port=0
auto_net_state_mon=0
register_only_when_network_is_up=0
ping_with_options=0
inc_timeout=20

[rtp]
audio_rtp_port=%d-%d
video_rtp_port=%d-%d

[sound]
echocancellation=0
`, udp, tcp, rtpLo, rtpLo+19, rtpLo+20, rtpLo+39)
	if err := os.WriteFile(filepath.Join(p.dir, "linphonerc"), []byte(rc), 0o644); err != nil {
		t.Fatal(err)
	}
	// -d 6 -l: liblinphone's debug log to a file; its end is shown when a command fails.
	p.cmd = exec.Command(bin, "-c", filepath.Join(p.dir, "linphonerc"), "-d", "6", "-l", filepath.Join(p.dir, "linphone.log"))
	p.cmd.Dir = p.dir
	p.cmd.Env = append(os.Environ(), "HOME="+p.dir, "XDG_CONFIG_HOME="+filepath.Join(p.dir, ".config"),
		"XDG_DATA_HOME="+filepath.Join(p.dir, ".local", "share"), "XDG_RUNTIME_DIR="+filepath.Join(p.dir, "run"))
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start linphonec: %v", err)
	}
	go func() {
		p.read(stdout) // Wait closes the pipe: read it to the end first
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)

	// Without a sound card: the tone is what it sends (and, as hold music, what it plays to a
	// call it holds), and what it receives goes to received.wav.
	p.send("soundcard use files")
	p.await(15*time.Second, regexp.MustCompile(`^Using wav files instead of soundcard`))
	p.send("play " + filepath.Join(p.dir, "tone.wav"))
	p.send("record " + p.recordFile())
	p.onlyPCMU()
	p.register()
	return p
}

// recordFile is where linphonec writes the audio it receives.
func (p *linphone) recordFile() string { return filepath.Join(p.dir, "received.wav") }

var codecLine = regexp.MustCompile(`^\s*(\d+): (\S+) \((\d+)\) (enabled|disabled)$`)

// onlyPCMU disables every codec but G.711 µ-law, as the baresip phones have it: the recorded
// audio is then 8 kHz, as the tone detection wants, whoever the far end is.
func (p *linphone) onlyPCMU() {
	p.t.Helper()
	p.send("codec list")
	p.send("ports") // its answer, "sip port = N", ends the list
	end := regexp.MustCompile(`^sip port = `)
	p.mu.Lock()
	start := p.next
	p.mu.Unlock()
	p.await(5*time.Second, end)
	p.mu.Lock()
	lines := append([]string(nil), p.lines[start:p.next]...)
	p.mu.Unlock()
	var disable []string
	for _, l := range lines {
		if m := codecLine.FindStringSubmatch(l); m != nil && m[4] == "enabled" && !(m[2] == "PCMU" && m[3] == "8000") {
			disable = append(disable, m[1])
		}
	}
	for _, i := range disable {
		p.send("codec disable " + i)
	}
}

// decodedSoFar returns the audio linphonec received (8 kHz: onlyPCMU). liblinphone restarts its
// streams at every re-INVITE (hold, transfer) and reopens the file each time: it appends, and
// fills in the 44-byte WAV header (zeros until then) when it closes the file, with the size of
// what was there then. So everything after the header is read.
func (p *linphone) decodedSoFar() []int16 {
	b, err := os.ReadFile(p.recordFile())
	if err != nil || len(b) < 44 {
		return nil
	}
	b = b[44:]
	out := make([]int16, len(b)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out
}

// awaitTone waits until linphonec has received at least seconds of a tone of hz.
func (p *linphone) awaitTone(hz int, seconds float64, d time.Duration) {
	p.t.Helper()
	awaitTone(p.t, "linphonec "+p.spec.Ext, p.decodedSoFar, hz, seconds, d)
}

// read collects linphonec's output lines. Its prompt, "linphonec> ", is printed without a line
// break after the answer to each command, so a message that comes later shares the prompt's line:
// lines are split at the prompt, which is dropped.
func (p *linphone) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var lines []string
		for _, l := range strings.Split(sc.Text(), "linphonec> ") {
			if l != "" {
				lines = append(lines, l)
			}
		}
		p.mu.Lock()
		p.lines = append(p.lines, lines...)
		close(p.signal)
		p.signal = make(chan struct{})
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.eof = true
	close(p.signal)
	p.signal = make(chan struct{})
	p.mu.Unlock()
}

// send writes one command to linphonec.
func (p *linphone) send(command string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, command+"\n"); err != nil {
		p.failf("send %q: %v", command, err)
	}
}

// await returns the submatches of the first line not yet consumed that matches re, consuming it
// and every line before it. It fails the test when none comes within d.
func (p *linphone) await(d time.Duration, re *regexp.Regexp) []string {
	p.t.Helper()
	m, ok := p.awaitOK(d, re)
	if !ok {
		p.failf("no line matching %q within %v", re, d)
	}
	return m
}

// awaitOK is await that reports a timeout instead of failing.
func (p *linphone) awaitOK(d time.Duration, re *regexp.Regexp) ([]string, bool) {
	timeout := time.After(d)
	for {
		p.mu.Lock()
		for i := p.next; i < len(p.lines); i++ {
			if m := re.FindStringSubmatch(p.lines[i]); m != nil {
				p.next = i + 1
				p.mu.Unlock()
				return m, true
			}
		}
		eof, signal := p.eof, p.signal
		p.mu.Unlock()
		if eof {
			return nil, false
		}
		select {
		case <-signal:
		case <-timeout:
			return nil, false
		}
	}
}

// printed reports whether linphonec printed a line matching re at any time (consumed or not).
func (p *linphone) printed(re *regexp.Regexp) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

var sipTransport = regexp.MustCompile(`\]: (?:message sent to|received \[\d+\] new bytes from) \[(\w+)://`)

// transports counts the SIP messages linphonec sent and the reads it made, by transport (UDP,
// TCP, TLS), from its debug log. Call it after stop.
func (p *linphone) transports() map[string]int {
	b, _ := os.ReadFile(filepath.Join(p.dir, "linphone.log"))
	n := map[string]int{}
	for _, m := range sipTransport.FindAllStringSubmatch(string(b), -1) {
		n[strings.ToUpper(m[1])]++
	}
	return n
}

// output returns everything linphonec printed.
func (p *linphone) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// failf fails the test with the message, linphonec's output and the end of its debug log.
func (p *linphone) failf(format string, args ...any) {
	p.t.Helper()
	p.stop()
	log, _ := os.ReadFile(filepath.Join(p.dir, "linphone.log"))
	if len(log) > 8000 {
		log = append([]byte("...\n"), log[len(log)-8000:]...)
	}
	p.t.Fatalf("linphonec %s: %s\noutput:\n%s\nlog:\n%s", p.spec.Ext, fmt.Sprintf(format, args...), p.output(), log)
}

var linphoneRegistered = regexp.MustCompile(`^registered, identity=`)

// register adds the PBX as the default proxy with the extension's credentials and waits until
// linphonec reports itself registered ("status register" is polled: linphonec prints nothing by
// itself when a registration succeeds).
func (p *linphone) register() {
	p.t.Helper()
	proxy := fmt.Sprintf("<sip:%s;transport=%s>", p.pbx, p.spec.Transport)
	p.send(fmt.Sprintf("register sip:%s@%s %s %s", p.spec.Ext, p.pbx, proxy, p.spec.Password))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p.send("status register")
		if _, ok := p.awaitOK(200*time.Millisecond, linphoneRegistered); ok {
			return
		}
	}
	p.failf("not registered within 10s")
}

// callID waits for linphonec to announce a call ("Receiving new incoming call from X, assigned
// id N" or "Establishing call id to X, assigned id N") and returns linphonec's number for it.
func (p *linphone) callID(d time.Duration, incoming bool) string {
	p.t.Helper()
	re := regexp.MustCompile(`^Establishing call id to (.*), assigned id (\d+)`)
	if incoming {
		re = regexp.MustCompile(`^Receiving new incoming call from (.*), assigned id (\d+)`)
	}
	return p.await(d, re)[2]
}

// awaitCall waits for a line "Call ID with|to PEER WHAT" about call id, e.g. what "connected" or
// "is now paused", and returns the line.
func (p *linphone) awaitCall(d time.Duration, id, what string) string {
	p.t.Helper()
	return p.await(d, regexp.MustCompile(`^Call `+id+` (with|to) .* `+regexp.QuoteMeta(what)))[0]
}

// stop quits linphonec (which ends its calls and unregisters) and kills it if it has not exited
// within 5s. It is safe to call more than once.
func (p *linphone) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	io.WriteString(p.stdin, "quit\n")
	select {
	case <-p.exited:
		if p.waitErr != nil {
			p.t.Errorf("linphonec %s exited with %v", p.spec.Ext, p.waitErr)
		}
	case <-time.After(5 * time.Second):
		p.t.Errorf("linphonec %s did not quit within 5s; killed", p.spec.Ext)
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.stdin.Close()
}
