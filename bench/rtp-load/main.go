// Command rtp-load measures a media relay: N calls, each with two G.711 streams of 50 packets/s
// (one per direction), first sent directly (the baseline), then through the relay. The relay runs
// in a process of its own: pbxkit's media.Relay in a child (this program started with -relay),
// or rtpengine, set up over its NG control protocol (-ng, -ng-pid). The relay's CPU is that
// process's user+system time during the relayed run, divided by the packets it relayed. Loss and
// latency (p50/p99) are measured by the generator for both runs; what the relay adds is the
// relayed figure minus the baseline's.
//
// The generator is kept cheap so that it leaves the relay room on a small machine: every call's
// caller side is one socket and every callee side another (a relay keeps each call apart by its
// own ports; both sides' addresses may be the same for many calls), sending with sendmmsg and
// receiving with recvmmsg. Sends are spread evenly: every millisecond a twentieth of the calls
// send, as phones that are not in step with each other would.
//
//	go run ./bench/rtp-load -calls 1000 -seconds 20
//	bench/rtp-compare.sh 1000 20    # pbxkit and rtpengine, one after the other
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/pbxkit/pbxkit/media"
)

func main() {
	calls := flag.Int("calls", 1000, "concurrent calls (two streams each)")
	seconds := flag.Int("seconds", 20, "seconds of audio per run")
	lo := flag.Int("ports", 20000, "first port of the relay's range")
	relayMode := flag.Bool("relay", false, "run as the relay process (started by the generator)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the relay process to this file")
	ng := flag.String("ng", "", "measure rtpengine instead: its NG control address (host:port)")
	ngPid := flag.Int("ng-pid", 0, "rtpengine's process ID, for its CPU time")
	flag.IntVar(&loops, "loops", 0, "the relay's event loops (media.Config.Loops; 0: one per CPU)")
	flag.Parse()
	var err error
	switch {
	case *relayMode:
		err = serveRelay(*calls, *lo, *profile)
	case *ng != "" && *ngPid == 0:
		err = errors.New("-ng needs -ng-pid")
	default:
		err = run(*calls, time.Duration(*seconds)*time.Second, *lo, *profile, *ng, *ngPid)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtp-load:", err)
		os.Exit(1)
	}
}

type result struct {
	sent, received uint64
	p50, p99       time.Duration
	cpu            time.Duration // the generator's
}

var loopback = net.IPv4(127, 0, 0, 1)

var loops int

// routes says where each call's packets go: the caller's to toCallee[i], the callee's to
// toCaller[i].
type routes struct{ toCallee, toCaller []*net.UDPAddr }

func run(calls int, d time.Duration, lo int, profile, ng string, ngPid int) error {
	var socks [2]*net.UDPConn // the callers' and the callees' socket
	for i := range socks {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
		if err != nil {
			return err
		}
		c.SetReadBuffer(8 << 20)
		c.SetWriteBuffer(8 << 20)
		defer c.Close()
		socks[i] = c
	}
	callerPort, calleePort := port(socks[0]), port(socks[1])
	direct := routes{make([]*net.UDPAddr, calls), make([]*net.UDPAddr, calls)}
	for i := range calls {
		direct.toCallee[i], direct.toCaller[i] = socks[1].LocalAddr().(*net.UDPAddr), socks[0].LocalAddr().(*net.UDPAddr)
	}
	base := measure(socks, direct, d)
	fmt.Printf("baseline: %d streams, sent %d, received %d, loss %.3f%%, p50 %v, p99 %v, generator cpu %v\n",
		2*calls, base.sent, base.received, lossPct(base), base.p50, base.p99, base.cpu)

	var relay *relayProc
	var via routes
	var err error
	pid := ngPid
	if ng != "" {
		via, err = ngCalls(ng, calls, callerPort, calleePort)
	} else {
		relay, via, err = startRelay(calls, lo, callerPort, calleePort, profile)
		if err == nil {
			defer relay.cmd.Process.Kill()
			pid = relay.cmd.Process.Pid
		}
	}
	if err != nil {
		return err
	}
	before, err := processCPU(pid)
	if err != nil {
		return err
	}
	rel := measure(socks, via, d)
	after, err := processCPU(pid)
	if err != nil {
		return err
	}
	relayed := rel.received // rtpengine: what arrived went through it
	if relay != nil {
		// Closing the child's input ends it; it prints how many packets it relayed.
		relay.in.Close()
		if _, err := fmt.Fscan(relay.out, &relayed); err != nil {
			return fmt.Errorf("reading the relay's count: %w", err)
		}
		relay.cmd.Wait()
	}
	fmt.Printf("relayed:  %d streams, sent %d, received %d, loss %.3f%%, p50 %v, p99 %v, generator cpu %v\n",
		2*calls, rel.sent, rel.received, lossPct(rel), rel.p50, rel.p99, rel.cpu)
	cpu := after - before
	fmt.Printf("relay process: %d packets relayed, cpu %v (%.2f cores), %.2f us per packet\n",
		relayed, cpu, cpu.Seconds()/d.Seconds(), float64(cpu)/float64(time.Microsecond)/float64(max(relayed, 1)))
	fmt.Printf("added latency: p50 %v, p99 %v (%d packets/s)\n", rel.p50-base.p50, rel.p99-base.p99,
		rel.received/uint64(d/time.Second))
	return nil
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

// relayProc is the child process running the relay, with the pipes to talk to it.
type relayProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startRelay starts this program with -relay, hands it the endpoints' ports (a line "A B" per
// call) and reads back the relay ports facing each side.
func startRelay(calls, lo, callerPort, calleePort int, profile string) (*relayProc, routes, error) {
	via := routes{make([]*net.UDPAddr, calls), make([]*net.UDPAddr, calls)}
	self, err := os.Executable()
	if err != nil {
		return nil, via, err
	}
	cmd := exec.Command(self, "-relay", "-calls", strconv.Itoa(calls), "-ports", strconv.Itoa(lo), "-cpuprofile", profile, "-loops", strconv.Itoa(loops))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, via, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, via, err
	}
	if err := cmd.Start(); err != nil {
		return nil, via, err
	}
	out := bufio.NewReader(outPipe)
	w := bufio.NewWriter(in)
	for range calls {
		fmt.Fprintf(w, "%d %d\n", callerPort, calleePort)
	}
	if err := w.Flush(); err != nil {
		return nil, via, err
	}
	for i := range calls {
		var pa, pb int
		if _, err := fmt.Fscan(out, &pa, &pb); err != nil {
			cmd.Process.Kill()
			return nil, via, fmt.Errorf("relay process: %w", err)
		}
		// The caller sends to the port facing it, the callee to the one facing it.
		via.toCallee[i], via.toCaller[i] = &net.UDPAddr{IP: loopback, Port: pa}, &net.UDPAddr{IP: loopback, Port: pb}
	}
	return &relayProc{cmd: cmd, in: in, out: out}, via, nil
}

// serveRelay is the child: one relay session per line of input, until the input ends.
func serveRelay(calls, lo int, profile string) error {
	ports, err := media.NewPorts(loopback, lo, lo+4*calls+3)
	if err != nil {
		return err
	}
	relay, err := media.NewRelay(media.Config{Ports: ports, Timeout: -1, Loops: loops})
	if err != nil {
		return err
	}
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	var sessions []*media.Session
	for range calls {
		var a, b int
		if _, err := fmt.Fscan(in, &a, &b); err != nil {
			return err
		}
		s, err := relay.NewSession()
		if err != nil {
			return err
		}
		sessions = append(sessions, s)
		if _, err := s.Rewrite(true, sdpFor(a)); err != nil {
			return err
		}
		if _, err := s.Rewrite(false, sdpFor(b)); err != nil {
			return err
		}
		pa, pb := s.Ports()
		fmt.Fprintf(out, "%d %d\n", pa, pb)
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if _, err := io.Copy(io.Discard, in); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	var relayed uint64
	for _, s := range sessions {
		a, b := s.Stats()
		relayed += a.Packets + b.Packets
		s.Close()
	}
	fmt.Fprintln(out, relayed)
	return out.Flush()
}

func sdpFor(port int) []byte {
	return fmt.Appendf(nil, "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n", port)
}

func lossPct(r result) float64 {
	if r.sent == 0 {
		return 0
	}
	return 100 * (float64(r.sent) - float64(r.received)) / float64(r.sent)
}

// measure sends 50 packets/s each way for every call for d, along rt, and collects what arrives.
func measure(socks [2]*net.UDPConn, rt routes, d time.Duration) result {
	var sent, received atomic.Uint64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	calls := len(rt.toCallee)
	for _, c := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := receiveRTP(c, calls*int(d/(20*time.Millisecond))+100)
			received.Add(uint64(len(mine)))
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	before := cpuTime()
	var swg sync.WaitGroup
	stop := time.Now().Add(d)
	for side, dst := range [][]*net.UDPAddr{rt.toCallee, rt.toCaller} {
		swg.Add(1)
		go func() {
			defer swg.Done()
			sendRTP(socks[side], side, dst, stop, &sent)
		}()
	}
	swg.Wait()
	wg.Wait()
	cpu := cpuTime() - before
	slices.Sort(lat)
	r := result{sent: sent.Load(), received: received.Load(), cpu: cpu}
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

// receiveRTP reads RTP packets on c until none came for 500 ms and returns each one's latency,
// from the send time stamped in its payload; room is the capacity to start with.
func receiveRTP(c *net.UDPConn, room int) []time.Duration {
	mine := make([]time.Duration, 0, room)
	pc := ipv4.NewPacketConn(c)
	msgs := make([]ipv4.Message, 64)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	for {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			break
		}
		now := time.Now().UnixNano()
		for _, m := range msgs[:n] {
			pkt := m.Buffers[0][:m.N]
			if len(pkt) < 20 || pkt[0]>>6 != 2 {
				continue
			}
			mine = append(mine, time.Duration(now-int64(binary.BigEndian.Uint64(pkt[12:]))))
		}
	}
	return mine
}

// sendRTP sends one side's RTP from sock, a packet every 20 ms to each address of dst, until
// stop, counting the packets in sent. The calls are spread over the 1 ms steps of the interval.
func sendRTP(sock *net.UDPConn, side int, dst []*net.UDPAddr, stop time.Time, sent *atomic.Uint64) {
	const slots = 20 // 1 ms steps of the 20 ms packet interval
	calls := len(dst)
	pc := ipv4.NewPacketConn(sock)
	seq := make([]uint16, calls)
	msgs := make([]ipv4.Message, 0, calls/slots+1)
	bufs := make([][]byte, calls/slots+1)
	for i := range bufs {
		bufs[i] = make([]byte, 12+160)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	next := 0 // the next 1 ms step to send; late ticks catch up, so the rate holds
	for now := range tick.C {
		if now.After(stop) {
			return
		}
		for due := int(now.Sub(start) / time.Millisecond); next <= due; next++ {
			msgs = msgs[:0]
			stamp := uint64(time.Now().UnixNano())
			for i := next % slots; i < calls; i += slots {
				seq[i]++
				b := bufs[len(msgs)]
				b[0], b[1] = 0x80, 0 // RTP version 2, PCMU
				binary.BigEndian.PutUint16(b[2:], seq[i])
				binary.BigEndian.PutUint32(b[4:], uint32(seq[i])*160)
				binary.BigEndian.PutUint32(b[8:], uint32(2*i+side+1)) // SSRC
				binary.BigEndian.PutUint64(b[12:], stamp)
				msgs = append(msgs, ipv4.Message{Buffers: [][]byte{b}, Addr: dst[i]})
			}
			for len(msgs) > 0 {
				n, err := pc.WriteBatch(msgs, 0)
				if err != nil {
					break
				}
				sent.Add(uint64(n))
				msgs = msgs[n:]
			}
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU reads a process's user+system time from /proc/PID/stat (in clock ticks of 10 ms).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis are
	// state, ppid, ... with utime and stime the 12th and 13th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unreadable /proc stat")
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// ngCalls sets up the calls in rtpengine over its NG control protocol (an offer with the
// caller's description, an answer with the callee's) and returns where each side must send: the
// caller to the port in the answer rtpengine rewrote, the callee to the port in the offer.
func ngCalls(addr string, calls, callerPort, calleePort int) (routes, error) {
	via := routes{make([]*net.UDPAddr, calls), make([]*net.UDPAddr, calls)}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return via, err
	}
	defer c.Close()
	buf := make([]byte, 65536)
	ask := func(cookie string, fields ...string) (string, error) {
		var b strings.Builder
		b.WriteString(cookie + " d")
		for _, f := range fields {
			fmt.Fprintf(&b, "%d:%s", len(f), f)
		}
		b.WriteString("e")
		for try := 0; try < 5; try++ {
			c.Write([]byte(b.String()))
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(buf)
			if err != nil {
				continue
			}
			reply := string(buf[:n])
			if !strings.HasPrefix(reply, cookie+" ") {
				continue
			}
			if !strings.Contains(reply, "6:result2:ok") {
				return "", fmt.Errorf("rtpengine: %s", reply)
			}
			return benString(reply, "3:sdp")
		}
		return "", errors.New("rtpengine does not answer")
	}
	for i := range calls {
		callID := fmt.Sprintf("rtp-load-%d", i)
		offer, err := ask(fmt.Sprintf("o%d", i), "command", "offer", "call-id", callID, "from-tag", "a", "sdp",
			string(sdpFor(callerPort)))
		if err != nil {
			return via, err
		}
		answer, err := ask(fmt.Sprintf("a%d", i), "command", "answer", "call-id", callID, "from-tag", "a", "to-tag", "b", "sdp",
			string(sdpFor(calleePort)))
		if err != nil {
			return via, err
		}
		pb, err := audioPort(offer)
		if err != nil {
			return via, err
		}
		pa, err := audioPort(answer)
		if err != nil {
			return via, err
		}
		via.toCallee[i], via.toCaller[i] = &net.UDPAddr{IP: loopback, Port: pa}, &net.UDPAddr{IP: loopback, Port: pb}
	}
	return via, nil
}

// benString returns the bencoded string value after key in a flat reply.
func benString(reply, key string) (string, error) {
	i := strings.Index(reply, key)
	if i < 0 {
		return "", fmt.Errorf("rtpengine reply without %s: %s", key, reply)
	}
	rest := reply[i+len(key):]
	colon := strings.IndexByte(rest, ':')
	n, err := strconv.Atoi(rest[:max(colon, 0)])
	if colon < 0 || err != nil || colon+1+n > len(rest) {
		return "", fmt.Errorf("rtpengine reply: bad %s: %s", key, reply)
	}
	return rest[colon+1 : colon+1+n], nil
}

// audioPort returns the port of a description's m=audio line.
func audioPort(sdp string) (int, error) {
	i := strings.Index(sdp, "m=audio ")
	if i < 0 {
		return 0, fmt.Errorf("no m=audio in %q", sdp)
	}
	f := strings.Fields(sdp[i+len("m=audio "):])
	if len(f) == 0 {
		return 0, fmt.Errorf("no port in %q", sdp)
	}
	return strconv.Atoi(f[0])
}
