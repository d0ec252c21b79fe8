// Command rtp-load measures the media relay: N calls, each with two G.711 streams of 50 packets/s
// (one per direction), first sent directly between the endpoints (the baseline), then through
// the relay. It reports loss, latency (p50/p99, and what the relay adds to the baseline of the
// same run) and the relay's CPU per packet: the process CPU of the relayed run minus that of the
// baseline run (same senders and receivers), divided by the packets relayed.
//
//	go run ./bench/rtp-load -calls 1000 -seconds 20
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"slices"
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
	profile := flag.String("cpuprofile", "", "write a CPU profile of the relayed run to this file")
	flag.Parse()
	cpuProfile = *profile
	if err := run(*calls, time.Duration(*seconds)*time.Second, *lo); err != nil {
		fmt.Fprintln(os.Stderr, "rtp-load:", err)
		os.Exit(1)
	}
}

var cpuProfile string

type result struct {
	sent, received uint64
	p50, p99       time.Duration
	cpu            time.Duration
}

func run(calls int, d time.Duration, lo int) error {
	ip := net.IPv4(127, 0, 0, 1)
	eps := make([]*net.UDPConn, 2*calls)
	for i := range eps {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
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
	fmt.Printf("baseline: %d streams, sent %d, received %d, loss %.3f%%, p50 %v, p99 %v, cpu %v\n",
		len(eps), base.sent, base.received, lossPct(base), base.p50, base.p99, base.cpu)

	ports, err := media.NewPorts(ip, lo, lo+4*calls+3)
	if err != nil {
		return err
	}
	relay, err := media.NewRelay(media.Config{Ports: ports, Timeout: -1})
	if err != nil {
		return err
	}
	via := make([]*net.UDPAddr, len(eps))
	for i := 0; i < len(eps); i += 2 {
		s, err := relay.NewSession()
		if err != nil {
			return err
		}
		defer s.Close()
		if _, err := s.Rewrite(true, sdpFor(eps[i])); err != nil {
			return err
		}
		if _, err := s.Rewrite(false, sdpFor(eps[i+1])); err != nil {
			return err
		}
		pa, pb := s.Ports()
		via[i], via[i+1] = &net.UDPAddr{IP: ip, Port: pa}, &net.UDPAddr{IP: ip, Port: pb}
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
	}
	rel := measure(eps, via, d)
	pprof.StopCPUProfile()
	fmt.Printf("relayed:  %d streams, sent %d, received %d, loss %.3f%%, p50 %v, p99 %v, cpu %v\n",
		len(eps), rel.sent, rel.received, lossPct(rel), rel.p50, rel.p99, rel.cpu)
	fmt.Printf("added latency: p50 %v, p99 %v; relay CPU per packet: %.2f us (%d packets/s)\n",
		rel.p50-base.p50, rel.p99-base.p99,
		float64(rel.cpu-base.cpu)/float64(time.Microsecond)/float64(max(rel.received, 1)),
		rel.received/uint64(d/time.Second))
	return nil
}

func sdpFor(c *net.UDPConn) []byte {
	return fmt.Appendf(nil, "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n",
		c.LocalAddr().(*net.UDPAddr).Port)
}

func lossPct(r result) float64 {
	if r.sent == 0 {
		return 0
	}
	return 100 * (float64(r.sent) - float64(r.received)) / float64(r.sent)
}

// measure sends 50 packets/s from every endpoint i to dst[i] for d and collects what arrives.
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
			var mine []time.Duration
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
	// Senders: every 20 ms each endpoint sends one 160-byte G.711 packet, spread over senders.
	const senders = 8
	var swg sync.WaitGroup
	stop := time.Now().Add(d)
	for s := range senders {
		swg.Add(1)
		go func() {
			defer swg.Done()
			payload := make([]byte, 160)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			var seq uint16
			for now := range tick.C {
				if now.After(stop) {
					return
				}
				seq++
				for i := s; i < len(eps); i += senders {
					binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
					pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: uint32(i + 1)}, Payload: payload}
					b, _ := pkt.Marshal()
					if _, err := eps[i].WriteToUDP(b, dst[i]); err == nil {
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
