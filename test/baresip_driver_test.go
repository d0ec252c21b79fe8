package test

// A driver for real softphones: baresip 1.0 (Debian's baresip package) run as a subprocess, one
// per extension, each with its own config folder, controlled over its ctrl_tcp socket (netstring
// framed JSON: {"command":"dial","params":"102","token":"3"} in, {"response":true,"ok":true,
// "data":"...","token":"3"} and {"event":true,"type":"CALL_ESTABLISHED",...} out).
//
// Each phone sends a sine tone of its own frequency (aufile source, a generated WAV), and the
// sndfile filter dumps the audio it decodes from the far end to a WAV in its folder, so a test can
// tell whose audio reached whom. baresip runs with -s: it traces every SIP message it sends or
// receives, with the transport, on its standard output (phone.trace parses that).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
)

// baresipBin returns the path of baresip, or skips the test (fails it under CI=true), as
// internal/testenv does for sipp.
func baresipBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("baresip")
	if err != nil {
		msg := "baresip is not on PATH: install it (apt-get install -y baresip-core)"
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// phoneSpec says which extension a phone registers as, and how.
type phoneSpec struct {
	Ext, Password string
	Transport     string // "udp" (the default) or "tcp"
	ToneHz        int    // frequency of the tone the phone sends; a multiple of 50
}

// phoneEvent is one ctrl_tcp event.
type phoneEvent struct {
	Type      string `json:"type"`
	Class     string `json:"class"`
	Param     string `json:"param"`
	AOR       string `json:"accountaor"`
	Direction string `json:"direction"`
	PeerURI   string `json:"peeruri"`
	ID        string `json:"id"`
}

func (e phoneEvent) String() string {
	s := e.Type
	if e.Direction != "" {
		s += " " + e.Direction
	}
	if e.PeerURI != "" {
		s += " peer=" + e.PeerURI
	}
	if e.Param != "" {
		s += fmt.Sprintf(" param=%q", e.Param)
	}
	return s
}

type ctrlMessage struct {
	phoneEvent
	Event    bool   `json:"event"`
	Response bool   `json:"response"`
	OK       bool   `json:"ok"`
	Data     string `json:"data"`
	Token    string `json:"token"`
}

// phone is one running baresip.
type phone struct {
	t        *testing.T
	spec     phoneSpec
	pbx      string // host:port of the PBX
	pbxPort  int
	dir      string
	sipPort  int
	ctrlPort int
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has been reaped
	waitErr  error         // how it exited; read after exited is closed
	conn     net.Conn

	mu      sync.Mutex
	events  []phoneEvent
	next    int           // events before next were consumed by await
	signal  chan struct{} // closed and replaced when an event or reply arrives, or the socket ends
	replies map[string]ctrlMessage
	readErr error
	token   int
	calls   int // calls whose audio dumps were collected
}

const phoneToneSeconds = 30 // longer than any test call: baresip hangs up when its source ends

// startPhone writes a config folder for spec, starts baresip on free ports and connects to its
// control socket. The phone is not registered yet (see register). It is stopped when the test
// ends, and its process is reaped.
func startPhone(t *testing.T, pbxAddr string, spec phoneSpec) *phone {
	t.Helper()
	bin := baresipBin(t)
	if spec.Transport == "" {
		spec.Transport = "udp"
	}
	_, port, err := net.SplitHostPort(pbxAddr)
	if err != nil {
		t.Fatal(err)
	}
	p := &phone{t: t, spec: spec, pbx: pbxAddr, dir: t.TempDir(), exited: make(chan struct{}),
		signal: make(chan struct{}), replies: map[string]ctrlMessage{}}
	p.pbxPort, _ = strconv.Atoi(port)
	p.sipPort, p.ctrlPort = phonePorts(t)
	rtpLo := freePortRange(t, 40)
	tone := filepath.Join(p.dir, "tone.wav")
	if err := writeToneWAV(tone, spec.ToneHz, phoneToneSeconds); err != nil {
		t.Fatal(err)
	}
	// No accounts file entry: the account is added over ctrl_tcp by register, once the test is
	// connected, so that no REGISTER event happens before anyone listens (ctrl_tcp drops events
	// while no client is connected).
	config := fmt.Sprintf(`# written by pbxkit's test/baresip_driver_test.go
poll_method		epoll
net_interface		127.0.0.1
sip_listen		127.0.0.1:%d
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			sndfile.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:%d
audio_source		aufile,%s
snd_path		%s
rtp_ports		%d-%d
call_local_timeout	20
`, p.sipPort, p.ctrlPort, tone, p.dir, rtpLo, rtpLo+39)
	if err := os.WriteFile(filepath.Join(p.dir, "config"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "accounts"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(p.dir, "baresip.out"))
	if err != nil {
		t.Fatal(err)
	}
	// -f: config folder, -s: SIP trace on standard output, -v: debug log, -t: quit after that
	// many seconds, so that a phone outlives a test binary that died without its clean-ups
	// (a -timeout panic) by two minutes at most.
	p.cmd = exec.Command(bin, "-f", p.dir, "-s", "-v", "-t", "120")
	p.cmd.Dir = p.dir
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start baresip: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		out.Close()
		close(p.exited)
	}()
	t.Cleanup(p.stop)

	// baresip listens on its control port once its modules are loaded: retry until then.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.ctrlPort), time.Second)
		if err == nil {
			p.conn = c
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("phone %s: baresip exited at start:\n%s", spec.Ext, p.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("phone %s: no control socket on port %d within 10s: %v\n%s", spec.Ext, p.ctrlPort, err, p.output())
		}
	}
	go p.read()
	return p
}

// read takes netstrings off the control socket until it closes.
func (p *phone) read() {
	r := bufio.NewReader(p.conn)
	var err error
	for {
		var msg []byte
		if msg, err = readNetstring(r); err != nil {
			break
		}
		var m ctrlMessage
		if err = json.Unmarshal(msg, &m); err != nil {
			err = fmt.Errorf("ctrl_tcp sent %q: %w", msg, err)
			break
		}
		p.mu.Lock()
		switch {
		case m.Response:
			p.replies[m.Token] = m
		case m.Event:
			p.events = append(p.events, m.phoneEvent)
		}
		close(p.signal)
		p.signal = make(chan struct{})
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.readErr = err
	close(p.signal)
	p.signal = make(chan struct{})
	p.mu.Unlock()
}

func readNetstring(r *bufio.Reader) ([]byte, error) {
	head, err := r.ReadString(':')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(head[:len(head)-1])
	if err != nil || n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("bad netstring length %q", head)
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if buf[n] != ',' {
		return nil, fmt.Errorf("netstring of %d bytes not followed by a comma", n)
	}
	return buf[:n], nil
}

func writeNetstring(w io.Writer, msg []byte) error {
	_, err := fmt.Fprintf(w, "%d:%s,", len(msg), msg)
	return err
}

// command runs a baresip command (a menu long command: dial, hangup, accept, uanew, ...) and
// returns its output. It fails the test if baresip reports an error or does not answer.
func (p *phone) command(name, params string) string {
	p.t.Helper()
	p.mu.Lock()
	p.token++
	tok := strconv.Itoa(p.token)
	p.mu.Unlock()
	req, _ := json.Marshal(map[string]string{"command": name, "params": params, "token": tok})
	p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := writeNetstring(p.conn, req); err != nil {
		p.t.Fatalf("phone %s: send %s: %v", p.spec.Ext, req, err)
	}
	timeout := time.After(5 * time.Second)
	for {
		p.mu.Lock()
		m, ok := p.replies[tok]
		delete(p.replies, tok)
		readErr, signal := p.readErr, p.signal
		p.mu.Unlock()
		switch {
		case ok && m.OK:
			return m.Data
		case ok:
			p.t.Fatalf("phone %s: command %s %q failed: %s", p.spec.Ext, name, params, m.Data)
		case readErr != nil:
			p.t.Fatalf("phone %s: control socket closed before the answer to %s: %v\n%s", p.spec.Ext, name, readErr, p.output())
		}
		select {
		case <-signal:
		case <-timeout:
			p.t.Fatalf("phone %s: no answer to %s %q within 5s", p.spec.Ext, name, params)
		}
	}
}

// await returns the first event not yet consumed whose type is one of types, consuming it and
// every event before it. It fails the test when none comes within d.
func (p *phone) await(d time.Duration, types ...string) phoneEvent {
	p.t.Helper()
	timeout := time.After(d)
	for {
		p.mu.Lock()
		for i := p.next; i < len(p.events); i++ {
			for _, typ := range types {
				if p.events[i].Type == typ {
					p.next = i + 1
					ev := p.events[i]
					p.mu.Unlock()
					return ev
				}
			}
		}
		readErr, signal := p.readErr, p.signal
		p.mu.Unlock()
		if readErr != nil {
			p.t.Fatalf("phone %s: control socket closed while waiting for %v: %v\nevents: %v", p.spec.Ext, types, readErr, p.allEvents())
		}
		select {
		case <-signal:
		case <-timeout:
			p.failf("no %v within %v; events: %v", types, d, p.allEvents())
		}
	}
}

// failf stops the phone (so that all it printed is in its output file) and fails the test with
// the message and the end of baresip's output.
func (p *phone) failf(format string, args ...any) {
	p.t.Helper()
	p.stop()
	out := p.output()
	if len(out) > 6000 {
		out = "...\n" + out[len(out)-6000:]
	}
	p.t.Fatalf("phone %s: %s\nbaresip output:\n%s", p.spec.Ext, fmt.Sprintf(format, args...), strings.ReplaceAll(out, "\x1b", "ESC"))
}

// allEvents returns every event the phone reported so far.
func (p *phone) allEvents() []phoneEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]phoneEvent(nil), p.events...)
}

// aor is the account line for uanew: the PBX as registrar, auto-answer, G.711 µ-law only.
func (p *phone) aor() string {
	params := ""
	if p.spec.Transport != "udp" {
		params = ";transport=" + p.spec.Transport
	}
	return fmt.Sprintf("<sip:%s@%s%s>;auth_pass=%s;regint=60;answermode=auto;audio_codecs=PCMU",
		p.spec.Ext, p.pbx, params, p.spec.Password)
}

// register adds the account and waits until the PBX accepted the REGISTER. On failure it shows
// what baresip said and the challenge the PBX sent.
func (p *phone) register() {
	p.t.Helper()
	p.command("uanew", p.aor())
	ev := p.await(10*time.Second, "REGISTER_OK", "REGISTER_FAIL")
	if ev.Type == "REGISTER_OK" {
		return
	}
	p.stop() // flushes the SIP trace
	var challenges []string
	registers, withCredentials := 0, 0
	for _, m := range p.trace() {
		if m.Sent && m.isRequest("REGISTER") {
			registers++
			if m.header("Authorization") != "" {
				withCredentials++
			}
		}
		if !m.Sent && (strings.HasPrefix(m.StartLine, "SIP/2.0 401") || strings.HasPrefix(m.StartLine, "SIP/2.0 407")) {
			challenges = append(challenges, m.StartLine)
			challenges = append(challenges, m.headers("WWW-Authenticate")...)
			challenges = append(challenges, m.headers("Proxy-Authenticate")...)
		}
	}
	p.t.Fatalf("phone %s (baresip, %s): registration failed: %s\nbaresip sent %d REGISTER, %d with credentials; the PBX's challenge:\n  %s",
		p.spec.Ext, p.spec.Transport, ev.Param, registers, withCredentials, strings.Join(challenges, "\n  "))
}

// dial calls target (an extension number: baresip completes it with the account's domain and
// URI parameters, such as ;transport=tcp).
func (p *phone) dial(target string) { p.t.Helper(); p.command("dial", target) }

// hangup ends the phone's current call.
func (p *phone) hangup() { p.t.Helper(); p.command("hangup", "") }

// stop quits baresip (which unregisters), and kills it if it has not exited within 5s. It is
// safe to call more than once.
func (p *phone) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	if p.conn != nil {
		req, _ := json.Marshal(map[string]string{"command": "quit", "token": "quit"})
		p.conn.SetWriteDeadline(time.Now().Add(time.Second))
		writeNetstring(p.conn, req)
	} else {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			p.t.Errorf("phone %s: baresip exited with %v", p.spec.Ext, p.waitErr)
		}
	case <-time.After(5 * time.Second):
		p.t.Errorf("phone %s: baresip did not quit within 5s; killed", p.spec.Ext)
		p.cmd.Process.Kill()
		<-p.exited
	}
	if p.conn != nil {
		p.conn.Close()
	}
}

// output returns what baresip printed so far. baresip's standard output is a file, so stdio
// buffers it: all of it is there only after the phone stopped.
func (p *phone) output() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "baresip.out"))
	return string(b)
}

// sipMessage is one message of a phone's SIP trace.
type sipMessage struct {
	Transport string // UDP, TCP or TLS
	Src, Dst  string
	Sent      bool // sent by the phone, else received
	StartLine string
	Method    string // from CSeq: the request's method, or the method a response answers
	Text      string
}

func (m sipMessage) isRequest(method string) bool { return strings.HasPrefix(m.StartLine, method+" ") }

// headers returns the values of the header name (long form) in the message.
func (m sipMessage) headers(name string) []string {
	var out []string
	for _, l := range strings.Split(m.Text, "\n") {
		l = strings.TrimRight(l, "\r")
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, name+": "+strings.TrimSpace(v))
		}
		if l == "" {
			break
		}
	}
	return out
}

// header returns the value of the first header name, or "".
func (m sipMessage) header(name string) string {
	if h := m.headers(name); len(h) > 0 {
		return strings.TrimSpace(h[0][len(name)+1:])
	}
	return ""
}

// cseqNum is the number in the CSeq header.
func (m sipMessage) cseqNum() string {
	n, _, _ := strings.Cut(m.header("CSeq"), " ")
	return n
}

func (m sipMessage) String() string {
	dir := "received"
	if m.Sent {
		dir = "sent"
	}
	return fmt.Sprintf("%s %s over %s %s -> %s", dir, m.StartLine, m.Transport, m.Src, m.Dst)
}

// baresip -s prints each message as ESC[36;1m "#\n" "TCP src -> dst\n" message ESC[;m.
var traceBlock = regexp.MustCompile(`(?s)\x1b\[36;1m#\n(UDP|TCP|TLS) (\S+) -> (\S+)\n(.*?)\x1b\[;m`)

// trace parses the SIP trace baresip printed. Call it after stop: before, stdio may still hold
// part of it.
func (p *phone) trace() []sipMessage {
	var out []sipMessage
	for _, b := range traceBlock.FindAllStringSubmatch(p.output(), -1) {
		m := sipMessage{Transport: b[1], Src: b[2], Dst: b[3], Text: b[4]}
		m.StartLine, _, _ = strings.Cut(m.Text, "\n")
		m.StartLine = strings.TrimRight(m.StartLine, "\r")
		if f := strings.Fields(m.header("CSeq")); len(f) == 2 {
			m.Method = f[1]
		}
		// Every message has the PBX's SIP port on one end, or, on a connection the PBX opened
		// to the phone, the phone's SIP port.
		switch {
		case portOf(m.Src) == p.pbxPort:
		case portOf(m.Dst) == p.pbxPort:
			m.Sent = true
		case portOf(m.Dst) == p.sipPort:
		default:
			m.Sent = true
		}
		out = append(out, m)
	}
	return out
}

func portOf(addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return n
}

// awaitAudio waits until the phone has decoded at least seconds of audio from the far end in the
// current call (the sndfile dump grows as RTP arrives).
func (p *phone) awaitAudio(seconds float64, d time.Duration) {
	p.t.Helper()
	want := int64(44 + seconds*8000*2) // PCMU decodes to 8 kHz 16-bit mono
	deadline := time.Now().Add(d)
	for {
		var size int64
		dumps, _ := filepath.Glob(filepath.Join(p.dir, "dump-*-dec.wav"))
		for _, f := range dumps {
			if fi, err := os.Stat(f); err == nil && fi.Size() > size {
				size = fi.Size()
			}
		}
		if size >= want {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("phone %s: %d bytes of decoded audio after %v, want %d (dumps %v); events: %v",
				p.spec.Ext, size, d, want, dumps, p.allEvents())
		}
		time.Sleep(20 * time.Millisecond) // no event tells that RTP arrived: poll the file
	}
}

// decodedSoFar returns the audio the phone decoded so far in its current call, from its dumps
// that are still being written.
func (p *phone) decodedSoFar() []int16 {
	dumps, _ := filepath.Glob(filepath.Join(p.dir, "dump-*-dec.wav"))
	sort.Strings(dumps) // named by time
	var samples []int16
	for _, f := range dumps {
		if s, err := readWAV16(f); err == nil {
			samples = append(samples, s...)
		}
	}
	return samples
}

// awaitTone waits until the phone has decoded at least seconds of a tone of hz in its current
// call.
func (p *phone) awaitTone(hz int, seconds float64, d time.Duration) {
	p.t.Helper()
	awaitTone(p.t, "phone "+p.spec.Ext, p.decodedSoFar, hz, seconds, d)
}

// awaitTone waits until the audio that decoded returns holds at least seconds of a tone of hz.
// No event tells that RTP arrived: it polls.
func awaitTone(t *testing.T, who string, decoded func() []int16, hz int, seconds float64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		samples := decoded()
		got := toneSeconds(samples, hz)
		if got >= seconds {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %.2fs of a %d Hz tone in %.2fs of decoded audio after %v, want %.2fs",
				who, got, hz, float64(len(samples))/8000, d, seconds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// receivedAudio renames the current call's dumps of decoded audio (baresip closes them when the
// call is closed) so that the next call writes new ones, and returns their samples in order. There
// is one dump per call unless the media was restarted during it.
func (p *phone) receivedAudio() []int16 {
	p.t.Helper()
	p.calls++
	var samples []int16
	for _, kind := range []string{"enc", "dec"} {
		dumps, _ := filepath.Glob(filepath.Join(p.dir, "dump-*-"+kind+".wav"))
		sort.Strings(dumps) // named by time
		for i, f := range dumps {
			name := filepath.Join(p.dir, fmt.Sprintf("call%d-%s%d.wav", p.calls, kind, i))
			if err := os.Rename(f, name); err != nil {
				p.t.Fatal(err)
			}
			if kind == "enc" {
				continue // what the phone sent: kept for a look after a failure
			}
			s, err := readWAV16(name)
			if err != nil {
				p.t.Fatalf("phone %s: %s: %v", p.spec.Ext, name, err)
			}
			samples = append(samples, s...)
		}
		if kind == "dec" && len(dumps) == 0 {
			p.t.Fatalf("phone %s: no dump of decoded audio in %s", p.spec.Ext, p.dir)
		}
	}
	return samples
}

// toneSeconds counts the 20 ms frames of 8 kHz audio in which a tone of hz carries most of the
// energy (and the frame is not near silence), in seconds. Other frequencies, silence and noise
// do not count.
func toneSeconds(samples []int16, hz int) float64 {
	frames := 0
	for _, on := range toneFrames(samples, hz) {
		if on {
			frames++
		}
	}
	return float64(frames) * toneFrame / 8000
}

const toneFrame = 160 // 20 ms at 8 kHz; a multiple of 50 Hz falls on a bin

// toneFrames tells, for each 20 ms frame of 8 kHz audio, whether a tone of hz carries most of its
// energy (and the frame is not near silence).
func toneFrames(samples []int16, hz int) []bool {
	const n = toneFrame
	var out []bool
	coeff := 2 * math.Cos(2*math.Pi*float64(hz)/8000)
	for off := 0; off+n <= len(samples); off += n {
		var energy, s1, s2 float64
		for _, v := range samples[off : off+n] {
			x := float64(v)
			energy += x * x
			s0 := x + coeff*s1 - s2
			s2, s1 = s1, s0
		}
		power := s1*s1 + s2*s2 - coeff*s1*s2 // |X(hz)|^2 (Goertzel)
		rms := math.Sqrt(energy / n)
		// A pure tone gives 2|X|^2 / (n * energy) = 1.
		out = append(out, rms > 300 && 2*power/(n*energy) > 0.8)
	}
	return out
}

// writeToneWAV writes seconds of a sine tone at hz as 8 kHz 16-bit mono PCM (what PCMU carries).
func writeToneWAV(path string, hz, seconds int) error {
	samples := make([]byte, 8000*seconds*2)
	for i := 0; i < 8000*seconds; i++ {
		v := int16(8000 * math.Sin(2*math.Pi*float64(hz)*float64(i)/8000))
		binary.LittleEndian.PutUint16(samples[2*i:], uint16(v))
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(36+len(samples)))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(8000), uint32(16000), uint16(2), uint16(16)} {
		binary.Write(&b, binary.LittleEndian, v) // fmt: PCM, mono, 8000 Hz, 16000 B/s, 2 B/frame, 16 bits
	}
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(len(samples)))
	b.Write(samples)
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// readWAV16 reads a 16-bit mono 8 kHz PCM WAV file. A data chunk whose size was never filled in
// (a dump still open) is read to the end of the file.
func readWAV16(path string) ([]int16, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, errors.New("not a WAV file")
	}
	var fmtOK bool
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		body := b[off+8:]
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return nil, errors.New("short fmt chunk")
			}
			format, ch := binary.LittleEndian.Uint16(body), binary.LittleEndian.Uint16(body[2:])
			rate, bits := binary.LittleEndian.Uint32(body[4:]), binary.LittleEndian.Uint16(body[14:])
			if format != 1 || ch != 1 || rate != 8000 || bits != 16 {
				return nil, fmt.Errorf("format %d, %d channels, %d Hz, %d bits: want PCM mono 8000 Hz 16 bits", format, ch, rate, bits)
			}
			fmtOK = true
		case "data":
			if !fmtOK {
				return nil, errors.New("data before fmt")
			}
			if size <= 0 || size > len(body) {
				size = len(body)
			}
			out := make([]int16, size/2)
			for i := range out {
				out[i] = int16(binary.LittleEndian.Uint16(body[2*i:]))
			}
			return out, nil
		}
		off += 8 + size + size&1
	}
	return nil, errors.New("no data chunk")
}

// phonePorts finds a SIP port for a phone (free on UDP and TCP, and port+1 free on TCP, where
// baresip would put TLS) and a control port that is neither.
func phonePorts(t *testing.T) (sip, ctrl int) {
	t.Helper()
	for i := 0; i < 50; i++ {
		var held []io.Closer
		release := func() {
			for _, c := range held {
				c.Close()
			}
		}
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, tl)
		sip = tl.Addr().(*net.TCPAddr).Port
		u, err1 := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sip})
		if err1 == nil {
			held = append(held, u)
		}
		t2, err2 := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", sip+1))
		if err2 == nil {
			held = append(held, t2)
		}
		c, err3 := net.Listen("tcp", "127.0.0.1:0")
		if err3 == nil {
			held = append(held, c)
			ctrl = c.Addr().(*net.TCPAddr).Port
		}
		release()
		if err1 == nil && err2 == nil && err3 == nil {
			return sip, ctrl
		}
	}
	t.Fatal("no free ports for a phone")
	return 0, 0
}

var portRanges struct {
	sync.Mutex
	next int
}

// freePortRange returns the first port of n consecutive UDP ports, all free now, in 20000-29999
// (below Linux's ephemeral range), not handed out before by this test binary.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	portRanges.Lock()
	defer portRanges.Unlock()
	if portRanges.next == 0 {
		portRanges.next = 20000 + (os.Getpid()%50)*100 // separate concurrent test binaries
	}
	for tries := 0; tries < 100; tries++ {
		lo := portRanges.next
		portRanges.next += n + n%2
		if portRanges.next+n > 30000 {
			portRanges.next = 20000
		}
		ok := true
		for p := lo; p < lo+n && ok; p++ {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return lo
		}
	}
	t.Fatalf("no %d free consecutive UDP ports", n)
	return 0
}
