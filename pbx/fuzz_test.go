package pbx

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzFrontDoor feeds arbitrary datagrams through everything the front door does before a request
// reaches routing: the raw read filter (with its stateless answers), sipgo's parser, validation and
// REGISTER contact parsing. Invariants: nothing panics, the filter never returns an error (sipgo
// would stop the listener), whatever it passes on parses, and every rejection is a 4xx-6xx.
// Seeds: testdata/fuzz/FuzzFrontDoor (the RFC 4475 messages) plus the torture corpus itself.
func FuzzFrontDoor(f *testing.F) {
	files, _ := filepath.Glob("testdata/torture/*/*.dat")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	p, err := New(Config{SIP: "127.0.0.1:0", Database: "sqlite::memory:", Domain: "pbx.test"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Shutdown(context.Background()) })
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { sink.Close() })
	props := sip.TransportReadProps{Transport: "udp", LocalAddr: p.udp.LocalAddr(), RemoteAddr: sink.LocalAddr()}

	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := p.readFilter(props, data)
		if err != nil {
			t.Fatalf("read filter returned an error: %v", err)
		}
		if len(out) == 0 {
			return
		}
		msg, err := p.parser.ParseSIP(out)
		if err != nil {
			if len(data) > 0 && len(out) != len(data) {
				t.Fatalf("filter rewrote the message into something unparseable: %v", err)
			}
			return // keep-alives and blank datagrams pass through to sipgo as they are
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		if rej := p.validate(req); rej != nil {
			if rej.code < 400 || rej.code > 699 {
				t.Fatalf("rejection with status %d", rej.code)
			}
			return
		}
		if req.Method == sip.REGISTER {
			if _, _, rej := p.reg.parseContacts(req); rej != nil && (rej.code < 400 || rej.code > 699) {
				t.Fatalf("contact rejection with status %d", rej.code)
			}
		}
	})
}
