// Command rtp-load measures the media relay: N calls, each with two G.711 streams of 50 packets/s
// (one per direction), first sent directly between the endpoints (the baseline), then through
// the relay. The relay runs in a child process (this program started with -relay), so its CPU is
// its own: the child's user+system time during the relayed run, divided by the packets it
// relayed. Loss and latency (p50/p99) are measured by the generator for both runs; what the relay
// adds is the relayed figure minus the baseline's.
//
//	go run ./bench/rtp-load -calls 1000 -seconds 20
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

	"github.com/pion/rtp"

	"github.com/pbxkit/pbxkit/media"
)

func main() {
	calls := flag.Int("calls", 1000, "concurrent calls (two streams each)")
	seconds := flag.Int("seconds", 20, "seconds of audio per run")
	lo := flag.Int("ports", 20000, "first port of the relay's range")
	relayMode := flag.Bool("relay", false, "run as the relay process (started by the generator)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the relay process to this file")
	flag.Parse()
	var err error
	if *relayMode {
		err = serveRelay(*calls, *lo, *profile)
	} else {
		err = run(*calls, time.Duration(*seconds)*time.Second, *lo, *profile)
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

func run(calls int, d time.Duration, lo int, profile string) error {
	eps := make([]*net.UDPConn, 2*calls)
	for i := range eps {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
		if err != nil {
			return err
		}
		c.SetReadBuffer(1 << 20)
		defer c.Close()
		eps[i] = c
	}
	// Baseline: A sends straight to B and back.
	direct := make([]*net.UDPAddr, len(eps))
	for i := 0; i < len(eps); i += 2 {
		direct[i], direct[i+1] = eps[i+1].LocalAddr().(*net.UDPAddr), eps[i].LocalAddr().(*net.UDPAddr)
	}
	base := measure(eps, direct, d)
	fmt.Printf("baseline: %d streams, sent %d, received %d, loss %.3f%%, p50 %v, p99 %v, generator cpu %v\n",
		len(eps), base.sent, base.received, lossPct(base), base.p50, base.p99, base.cpu)

	relay, via, err := startRelay(calls, lo, eps, profile)
	if err != nil {
		return err
	}
	defer relay.cmd.Process.Kill()
	before, err := processCPU(relay.cmd.Process.Pid)
	if err != nil {
		return err
	}
	rel := measure(eps, via, d)
	after, err := processCPU(relay.cmd.Process.Pid)
	if err != nil {
		return err
	}
	// Closing the child's input ends it; it prints how many packets it relayed.
	relay.in.Close()
	var relayed uint64
	if _, err := fmt.Fscan(relay.out, &relayed); err != nil {
		return fmt.Errorf("reading the relay's count: %w", err)
	}
	relay.cmd.Wait()
	fmt.Printf("relayed:  %d streams, sent %d, received %d, loss %.3f%%, p50 %v, p99 %v, generator cpu %v\n",
		len(eps), rel.sent, rel.received, lossPct(rel), rel.p50, rel.p99, rel.cpu)
	cpu := after - before
	fmt.Printf("relay process: %d packets relayed, cpu %v (%.2f cores), %.2f us per packet\n",
		relayed, cpu, cpu.Seconds()/d.Seconds(), float64(cpu)/float64(time.Microsecond)/float64(max(relayed, 1)))
	fmt.Printf("added latency: p50 %v, p99 %v (%d packets/s)\n", rel.p50-base.p50, rel.p99-base.p99,
		rel.received/uint64(d/time.Second))
	return nil
}

// relayProc is the child process running the relay, with the pipes to talk to it.
type relayProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startRelay starts this program with -relay, hands it the endpoints' ports (a line "A B" per
// call) and reads back the relay ports facing each endpoint.
func startRelay(calls, lo int, eps []*net.UDPConn, profile string) (*relayProc, []*net.UDPAddr, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(self, "-relay", "-calls", strconv.Itoa(calls), "-ports", strconv.Itoa(lo), "-cpuprofile", profile)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	out := bufio.NewReader(outPipe)
	w := bufio.NewWriter(in)
	for i := 0; i < len(eps); i += 2 {
		fmt.Fprintf(w, "%d %d\n", eps[i].LocalAddr().(*net.UDPAddr).Port, eps[i+1].LocalAddr().(*net.UDPAddr).Port)
	}
	if err := w.Flush(); err != nil {
		return nil, nil, err
	}
	via := make([]*net.UDPAddr, len(eps))
	for i := 0; i < len(eps); i += 2 {
		var pa, pb int
		if _, err := fmt.Fscan(out, &pa, &pb); err != nil {
			cmd.Process.Kill()
			return nil, nil, fmt.Errorf("relay process: %w", err)
		}
		via[i], via[i+1] = &net.UDPAddr{IP: loopback, Port: pa}, &net.UDPAddr{IP: loopback, Port: pb}
	}
	return &relayProc{cmd: cmd, in: in, out: out}, via, nil
}

// serveRelay is the child: one relay session per line of input, until the input ends.
func serveRelay(calls, lo int, profile string) error {
	ports, err := media.NewPorts(loopback, lo, lo+4*calls+3)
	if err != nil {
		return err
	}
	relay, err := media.NewRelay(media.Config{Ports: ports, Timeout: -1})
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

// measure sends 50 packets/s from every endpoint i to dst[i] for d and collects what arrives.
// The sends are spread evenly: every millisecond a twentieth of the endpoints send, as phones
// that are not in step with each other would.
func measure(eps []*net.UDPConn, dst []*net.UDPAddr, d time.Duration) result {
	var sent, received atomic.Uint64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for _, c := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			var p rtp.Packet
			mine := make([]time.Duration, 0, int(d/(20*time.Millisecond))+10)
			for {
				c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				n, _, err := c.ReadFromUDP(buf)
				if err != nil {
					break
				}
				if p.Unmarshal(buf[:n]) != nil || len(p.Payload) < 8 {
					continue
				}
				received.Add(1)
				sentAt := int64(binary.BigEndian.Uint64(p.Payload))
				mine = append(mine, time.Duration(time.Now().UnixNano()-sentAt))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	before := cpuTime()
	const senders, slots = 2, 20 // slots: 1 ms steps of the 20 ms packet interval
	var swg sync.WaitGroup
	stop := time.Now().Add(d)
	for s := range senders {
		swg.Add(1)
		go func() {
			defer swg.Done()
			payload := make([]byte, 160)
			buf := make([]byte, 12+160)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			seq := make([]uint16, len(eps))
			for step := 0; ; step++ {
				now := <-tick.C
				if now.After(stop) {
					return
				}
				for i := s*slots + step%slots; i < len(eps); i += senders * slots {
					seq[i]++
					binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
					pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq[i], Timestamp: uint32(seq[i]) * 160, SSRC: uint32(i + 1)}, Payload: payload}
					n, _ := pkt.MarshalTo(buf)
					if _, err := eps[i].WriteToUDP(buf[:n], dst[i]); err == nil {
						sent.Add(1)
					}
				}
			}
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
