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
	f.Add([]byte("SUBSCRIBE sip:200@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-s1\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:201@pbx.test>;tag=a\r\nTo: <sip:200@pbx.test>\r\nCall-ID: s1\r\n" +
		"CSeq: 1 SUBSCRIBE\r\nContact: <sip:201@127.0.0.1:5062>\r\nEvent: dialog;id=7\r\n" +
		"Accept: application/dialog-info+xml\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"))
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
		if req.Method == sip.SUBSCRIBE {
			_, inDialog := req.To().Params.Get("tag")
			if _, rej := p.parseSubscribe(req, inDialog); rej != nil && (rej.code < 400 || rej.code > 699) {
				t.Fatalf("subscribe rejection with status %d", rej.code)
			}
		}
	})
}
