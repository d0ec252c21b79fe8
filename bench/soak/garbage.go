package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"
)

// malformed are SIP requests the front door must refuse (400, 416, 505...) or drop.
var malformed = []string{
	// no Call-ID
	"INVITE sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %[1]s;branch=z9hG4bK-g%[2]d\r\nMax-Forwards: 70\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:2000@h>\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
	// CSeq method not the request's
	"OPTIONS sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %[1]s;branch=z9hG4bK-g%[2]d\r\nMax-Forwards: 70\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:2000@h>\r\nCall-ID: g%[2]d\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
	// Content-Length past the end
	"INVITE sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %[1]s;branch=z9hG4bK-g%[2]d\r\nMax-Forwards: 70\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:2000@h>\r\nCall-ID: g%[2]d\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 99999\r\n\r\nv=0\r\n",
	// SIP version 7
	"INVITE sip:2000@127.0.0.1 SIP/7.0\r\nVia: SIP/7.0/UDP %[1]s;branch=z9hG4bK-g%[2]d\r\nMax-Forwards: 70\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:2000@h>\r\nCall-ID: g%[2]d\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
	// Max-Forwards 0
	"INVITE sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %[1]s;branch=z9hG4bK-g%[2]d\r\nMax-Forwards: 0\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:2000@h>\r\nCall-ID: g%[2]d\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
	// unsupported body type
	"INVITE sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %[1]s;branch=z9hG4bK-g%[2]d\r\nMax-Forwards: 70\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:2000@h>\r\nCall-ID: g%[2]d\r\nCSeq: 1 INVITE\r\nContent-Type: text/garbage\r\nContent-Length: 4\r\n\r\nabcd",
	// a header line without a colon, a broken Via
	"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP\r\nthis is no header\r\nFrom: <sip:2000@h>;tag=1\r\nTo: <sip:2000@h>\r\nCall-ID: g%[2]d\r\nCSeq: x REGISTER\r\n\r\n",
	// BYE and CANCEL for dialogs and transactions that do not exist
	"BYE sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %[1]s;branch=z9hG4bK-g%[2]d\r\nMax-Forwards: 70\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:2000@h>;tag=2\r\nCall-ID: g%[2]d\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
	"CANCEL sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %[1]s;branch=z9hG4bK-g%[2]d\r\nMax-Forwards: 70\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:2000@h>\r\nCall-ID: g%[2]d\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
	// a response that belongs to no transaction
	"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-g%[2]d\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:2000@h>;tag=2\r\nCall-ID: g%[2]d\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
	// a well-formed INVITE from outside the trusted network: challenged (407), never a call
	"INVITE sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %[1]s;branch=z9hG4bK-g%[2]d\r\nMax-Forwards: 70\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:2000@h>\r\nCall-ID: g%[2]d\r\nCSeq: 1 INVITE\r\nContact: <sip:x@%[1]s>\r\nContent-Length: 0\r\n\r\n",
}

// garbage sends a burst at the PBX's SIP port: random datagrams, truncated and malformed SIP,
// from 127.0.0.2 (outside --trust 127.0.0.1/32, so the source's rate limit applies) and a share
// from 127.0.0.1 (trusted: nothing shed, everything parsed); then garbage over a few TCP
// connections. Answers are read and counted.
func (s *soak) garbage(n int) {
	sent := 0
	for _, ip := range []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 1)} {
		k, err := s.garbageUDP(ip, n)
		if err != nil {
			s.logf("garbage: %v", err)
			return
		}
		sent += k
	}
	tcp := s.garbageTCP()
	s.mu.Lock()
	s.counters["garbage datagrams sent"] += sent
	s.counters["garbage TCP connections"] += tcp
	s.mu.Unlock()
}

// garbageUDP sends n garbage datagrams from ip (a quarter of them from the trusted 127.0.0.1),
// counts the answers for three seconds, and returns how many it sent.
func (s *soak) garbageUDP(ip net.IP, n int) (int, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		return 0, err
	}
	go func() {
		buf := make([]byte, 65535)
		for {
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				return
			}
			s.count("answers to garbage")
		}
	}()
	trusted := ip[15] == 1
	count := n
	if trusted {
		count = n / 4
	}
	sent := 0
	for i := range count {
		c.WriteToUDP(garbageDatagram(c.LocalAddr(), trusted), s.pbx)
		sent++
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // a burst, not an overflow of the kernel's buffer
		}
	}
	time.AfterFunc(3*time.Second, func() { c.Close() })
	return sent, nil
}

// garbageDatagram is one datagram of a burst from local: random bytes, a request cut short, or
// a malformed request (never a well-formed INVITE from a trusted source: that would be a call).
func garbageDatagram(local net.Addr, trusted bool) []byte {
	switch k := rand.IntN(3); {
	case k == 0:
		b := make([]byte, 1+rand.IntN(1400))
		for j := range b {
			b[j] = byte(rand.Uint32())
		}
		return b
	case k == 1:
		// A request cut short somewhere.
		m := fmt.Sprintf(malformed[len(malformed)-1], local, rand.Int64())
		m = strings.Replace(m, "Content-Length: 0", "Content-Length: 40", 1)
		return []byte(m[:1+rand.IntN(len(m)-1)])
	default:
		m := malformed[rand.IntN(len(malformed))]
		if trusted && strings.Contains(m, "Contact: <sip:x@") {
			m = malformed[0] // trusted, a well-formed INVITE would be a call
		}
		return []byte(fmt.Sprintf(m, local, rand.Int64()))
	}
}

// garbageTCP opens five connections from 127.0.0.2 and writes random bytes or a request with a
// Content-Length past its end on each, then reads until the PBX closes them or two seconds
// pass. It returns how many connected.
func (s *soak) garbageTCP() int {
	tcp := 0
	for i := range 5 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
		conn, err := d.Dial("tcp", s.pbxSIP)
		if err != nil {
			s.count("garbage TCP connections refused")
			continue
		}
		tcp++
		b := make([]byte, 2000)
		for j := range b {
			b[j] = byte(rand.Uint32())
		}
		if i%2 == 0 {
			b = []byte(fmt.Sprintf(malformed[2], conn.LocalAddr(), rand.Int64()))
		}
		conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		conn.Write(b)
		go func() {
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4096)
			for {
				if _, err := conn.Read(buf); err != nil {
					break
				}
			}
			conn.Close()
		}()
	}
	return tcp
}
