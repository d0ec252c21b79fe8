package pbx_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
)

// tortureWant is the answer RFC 4475 expects from a PBX (a registrar and UAS for calls) for each
// message; 0 means no answer is possible or allowed (a response, or a request naming no Via) and
// the message must be dropped with a log line.
var tortureWant = map[string]int{
	// §3.1.1 valid messages: each is handled like any other request.
	"valid/dblreq":     401, // REGISTER; the extra INVITE in the datagram is ignored
	"valid/esc01":      407, // INVITE: needs proxy authentication
	"valid/esc02":      501, // RE%47IST%45R is an unknown method
	"valid/escnull":    401,
	"valid/intmeth":    501,
	"valid/longreq":    407,
	"valid/lwsdisp":    200, // OPTIONS
	"valid/mpart01":    405, // MESSAGE is not served
	"valid/noreason":   0,   // a response
	"valid/semiuri":    200,
	"valid/transports": 200,
	"valid/unreason":   0,
	"valid/wsinv":      407,
	// §3.1.2 invalid messages.
	"invalid/badinv01":   400, // extraneous header field separators
	"invalid/clerr":      400, // Content-Length larger than message
	"invalid/ncl":        400, // negative Content-Length
	"invalid/scalar02":   400, // overlarge scalar values
	"invalid/scalarlg":   0,   // a response with overlarge values
	"invalid/quotbal":    400, // unterminated quoted string
	"invalid/ltgtruri":   400, // <> around the Request-URI
	"invalid/lwsruri":    400, // LWS inside the Request-URI
	"invalid/lwsstart":   400, // several SP in the request line
	"invalid/trws":       400, // SP at the end of the request line
	"invalid/escruri":    400, // escaped headers in the Request-URI
	"invalid/baddate":    407, // a bad Date is ignored: processed as an INVITE
	"invalid/regbadct":   400, // Contact with escaped header not in <>
	"invalid/badaspec":   400, // spaces within addr-spec
	"invalid/baddn":      400, // non-token characters in display name
	"invalid/badvers":    505, // SIP/7.0
	"invalid/mismatch01": 400, // CSeq method differs
	"invalid/mismatch02": 400, // unknown method with CSeq mismatch: 400, not 501
	"invalid/bigcode":    0,   // a response with code 4294967301
	"invalid/badbranch":  400, // branch is only the magic cookie
	// §3.3 application layer semantics.
	"invalid/insuf":    400, // missing required headers
	"invalid/unkscm":   416, // unknown Request-URI scheme
	"invalid/novelsc":  416, // soap.beep: known to someone, not to a PBX
	"invalid/unksm2":   400, // a registrar needs a SIP or SIPS AOR in To
	"invalid/bext01":   420, // Require / Proxy-Require unknown
	"invalid/invut":    415, // unknown Content-Type
	"invalid/regaut01": 401, // unknown Authorization scheme: challenge
	"invalid/multi01":  400, // several values in single-value headers
	"invalid/mcl01":    400, // two Content-Length headers
	"invalid/bcast":    0,   // a response
	"invalid/zeromf":   200, // OPTIONS with Max-Forwards 0: answered here
	"invalid/cparam01": 401, // valid REGISTERs with unknown contact params
	"invalid/cparam02": 401,
	"invalid/regescrt": 401, // escaped header in a bracketed Contact is fine
	"invalid/sdp01":    406, // Accept excludes application/sdp
	"invalid/inv2543":  407, // RFC 2543 INVITE: handled for backward compatibility
	"invalid/test":     0,   // no Via: nothing to answer to
}

// TestTorture sends every RFC 4475 message to a running PBX from a socket on port 5060 of a
// loopback address, so that responses routed by the RFC rules (source IP, Via port) arrive there.
//
// Each message goes to a PBX of its own: the RFC's messages reuse Via branches and hosts, so sent
// in a row to one PBX a later message would match an earlier one's live transaction.
func TestTorture(t *testing.T) {
	conn := listenTortureClient(t)
	var logs strings.Builder
	files, _ := filepath.Glob("testdata/torture/*/*.dat")
	if len(files) != len(tortureWant) {
		t.Fatalf("%d torture files, %d expectations", len(files), len(tortureWant))
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "testdata/torture/"), ".dat")
		want, ok := tortureWant[name]
		if !ok {
			t.Fatalf("no expectation for %s", name)
		}
		t.Run(name, func(t *testing.T) {
			tp := startPBX(t, pbx.Config{})
			defer func() { logs.WriteString(tp.logs.String()) }()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.WriteToUDP(data, tp.addr); err != nil {
				t.Fatal(err)
			}
			wait := 2 * time.Second
			if want == 0 {
				wait = 300 * time.Millisecond
			}
			callIDs := rawHeaders(string(data), "call-id", "i")
			got := 0
			buf := make([]byte, 65535)
			deadline := time.Now().Add(wait)
			for {
				conn.SetReadDeadline(deadline)
				n, _, err := conn.ReadFromUDP(buf)
				if err != nil {
					break
				}
				res := string(buf[:n])
				ids := rawHeaders(res, "call-id", "i")
				if len(callIDs) == 0 && len(ids) != 0 || len(callIDs) > 0 && (len(ids) != 1 || !slices.Contains(callIDs, ids[0])) {
					continue // a late answer to an earlier message
				}
				line, _, _ := strings.Cut(res, "\r\n")
				var code int
				if _, err := fmt.Sscanf(line, "SIP/2.0 %d", &code); err != nil {
					t.Fatalf("bad status line %q", line)
				}
				if code != 100 {
					got = code
					break
				}
			}
			if got != want {
				t.Fatalf("got %d, want %d", got, want)
			}
		})
	}
	for _, l := range []string{"unparseable response dropped", "unparseable request dropped"} {
		if !strings.Contains(logs.String(), l) {
			t.Errorf("no log line %q for dropped messages", l)
		}
	}
}

// TestTortureInARow sends the whole corpus to one PBX, twice, as a scanner would: nothing may
// crash it, and it must still answer afterwards.
func TestTortureInARow(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	conn := listenTortureClient(t)
	files, _ := filepath.Glob("testdata/torture/*/*.dat")
	for range 2 {
		for _, f := range files {
			data, _ := os.ReadFile(f)
			if _, err := conn.WriteToUDP(data, tp.addr); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := newClient(t, tp.addr)
	if res := c.Do(c.Build(reqSpec{Method: "OPTIONS", To: "200"})); res.StatusCode != 200 {
		t.Fatalf("after the torture OPTIONS got %d", res.StatusCode)
	}
}

func listenTortureClient(t *testing.T) *net.UDPConn {
	t.Helper()
	for range 20 {
		ip := net.IPv4(127, byte(rand.IntN(200)+20), byte(rand.IntN(250)+1), byte(rand.IntN(250)+2))
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: 5060})
		if err == nil {
			t.Cleanup(func() { conn.Close() })
			return conn
		}
	}
	t.Fatal("no free 127.x.y.z:5060 for the torture client")
	return nil
}

// rawHeaders returns the values of a header in a raw message, by long or compact name.
func rawHeaders(msg string, names ...string) []string {
	var out []string
	head, _, _ := strings.Cut(strings.ReplaceAll(msg, "\r\n", "\n"), "\n\n")
	for _, l := range strings.Split(head, "\n") {
		n, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		for _, want := range names {
			if strings.EqualFold(strings.TrimSpace(n), want) {
				out = append(out, strings.TrimSpace(v))
			}
		}
	}
	return out
}
