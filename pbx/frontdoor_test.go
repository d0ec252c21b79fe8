package pbx_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/pbxkit/pbxkit/pbx"
)

const sdpBody = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

// TestFrontDoorStatuses sends one request per front-door rule over UDP and checks status, IANA
// reason phrase and the headers the RFCs require with it.
func TestFrontDoorStatuses(t *testing.T) {
	tp := startPBX(t, pbx.Config{MaxBodyBytes: 2048})
	c := newClient(t, tp.addr)
	inv := func(headers []string, body string) string {
		return c.Build(reqSpec{Method: "INVITE", From: "100", To: "200", Headers: headers, Body: body})
	}
	cases := []struct {
		name    string
		msg     string
		code    int
		reason  string
		headers map[string]string // header -> substring its value must contain
	}{
		{"version", strings.Replace(c.Build(reqSpec{Method: "OPTIONS", To: "200"}), "SIP/2.0\r\n", "SIP/3.0\r\n", 1),
			505, "Version Not Supported", nil},
		{"missing call-id", dropHeader(c.Build(reqSpec{Method: "OPTIONS", To: "200"}), "Call-ID"),
			400, "Bad Request", map[string]string{"Warning": "missing Call-ID header"}},
		{"duplicate cseq", addHeader(c.Build(reqSpec{Method: "OPTIONS", To: "200"}), "CSeq: 2 OPTIONS"),
			400, "Bad Request", map[string]string{"Warning": "duplicate CSeq header"}},
		{"duplicate to", addHeader(c.Build(reqSpec{Method: "OPTIONS", To: "200"}), "To: <sip:201@pbx.test>"),
			400, "Bad Request", map[string]string{"Warning": "duplicate To header"}},
		{"cseq method mismatch", c.Build(reqSpec{Method: "OPTIONS", To: "200", Headers: []string{"CSeq: 1 INVITE"}}),
			400, "Bad Request", map[string]string{"Warning": "CSeq method INVITE does not match"}},
		{"content-length larger than body", c.Build(reqSpec{Method: "OPTIONS", To: "200", Headers: []string{"Content-Length: 50"}, Body: "short"}),
			400, "Bad Request", map[string]string{"Warning": "malformed request"}},
		{"negative content-length", c.Build(reqSpec{Method: "OPTIONS", To: "200", Headers: []string{"Content-Length: -5"}}),
			400, "Bad Request", map[string]string{"Warning": "the Content-Length header cannot be read"}},
		{"non-numeric max-forwards", c.Build(reqSpec{Method: "OPTIONS", To: "200", Headers: []string{"Max-Forwards: ten"}}),
			400, "Bad Request", map[string]string{"Warning": "the Max-Forwards header cannot be read"}},
		{"unsupported uri scheme", c.Build(reqSpec{Method: "OPTIONS", URI: "mailto:someone@example.com", To: "200"}),
			416, "Unsupported URI Scheme", nil},
		{"body too large", inv(nil, sdpBody+strings.Repeat("a=x-pad:0123456789\r\n", 120)),
			413, "Request Entity Too Large", nil},
		{"request-uri too long", c.Build(reqSpec{Method: "OPTIONS", URI: "sip:" + strings.Repeat("9", 1100) + "@pbx.test", To: "200"}),
			414, "Request-URI Too Long", nil},
		{"max-forwards zero", inv([]string{"Max-Forwards: 0"}, sdpBody),
			483, "Too Many Hops", nil},
		{"loop", inv([]string{fmt.Sprintf("Via: SIP/2.0/UDP %s;branch=z9hG4bK-x;rport", c.Addr()), "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=" + tp.BranchPrefix() + "abc"}, sdpBody),
			482, "Loop Detected", nil},
		{"require unknown", c.Build(reqSpec{Method: "OPTIONS", To: "200", Headers: []string{"Require: 100rel, foo"}}),
			420, "Bad Extension", map[string]string{"Unsupported": "100rel, foo"}},
		{"proxy-require unknown", inv([]string{"Proxy-Require: sec-agree"}, sdpBody),
			420, "Bad Extension", map[string]string{"Unsupported": "sec-agree"}},
		{"invite body not sdp", inv([]string{"Content-Type: text/plain"}, "hello"),
			415, "Unsupported Media Type", map[string]string{"Accept": "application/sdp"}},
		{"invite accept excludes sdp", inv([]string{"Accept: text/html", "Content-Type: application/sdp"}, sdpBody),
			406, "Not Acceptable", map[string]string{"Accept": "application/sdp"}},
		{"unknown method", c.Build(reqSpec{Method: "FROBNICATE", To: "200"}),
			501, "Not Implemented", nil},
		{"known method not served", c.Build(reqSpec{Method: "MESSAGE", To: "200", Headers: []string{"Content-Type: text/plain"}, Body: "hi"}),
			405, "Method Not Allowed", map[string]string{"Allow": "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, REFER, NOTIFY, SUBSCRIBE"}},
		{"subscribe to another event package", c.Build(reqSpec{Method: "SUBSCRIBE", To: "200", Headers: []string{"Event: presence"}}),
			489, "Bad Event", map[string]string{"Allow-Events": "dialog, message-summary"}},
		{"subscribe in no dialog", c.Build(reqSpec{Method: "SUBSCRIBE", To: "200", Headers: []string{"Event: dialog", "To: <sip:200@pbx.test>;tag=abc"}}),
			481, "Call/Transaction Does Not Exist", nil},
		{"bye without dialog", c.Build(reqSpec{Method: "BYE", To: "200", Headers: []string{"To: <sip:200@pbx.test>;tag=abc"}}),
			481, "Call/Transaction Does Not Exist", nil},
		{"info without dialog", c.Build(reqSpec{Method: "INFO", To: "200", Headers: []string{"To: <sip:200@pbx.test>;tag=abc"}}),
			481, "Call/Transaction Does Not Exist", nil},
		{"re-invite without dialog", inv([]string{"To: <sip:200@pbx.test>;tag=abc", "Content-Type: application/sdp"}, sdpBody),
			481, "Call/Transaction Does Not Exist", nil},
		{"cancel matching nothing", c.Build(reqSpec{Method: "CANCEL", To: "200"}),
			481, "Call/Transaction Does Not Exist", nil},
		{"options", c.Build(reqSpec{Method: "OPTIONS", To: "200"}),
			200, "OK", map[string]string{"Allow": "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, REFER, NOTIFY, SUBSCRIBE", "Accept": "application/sdp", "Supported": "", "Allow-Events": "dialog, message-summary"}},
		{"options max-forwards zero answered here", c.Build(reqSpec{Method: "OPTIONS", To: "200", Headers: []string{"Max-Forwards: 0"}}),
			200, "OK", nil},
		{"invite needs proxy auth", inv([]string{"Content-Type: application/sdp"}, sdpBody),
			407, "Proxy Authentication Required", map[string]string{"Proxy-Authenticate": `algorithm=MD5`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := c.Do(tc.msg)
			if res.StatusCode != tc.code || res.Reason != tc.reason {
				t.Fatalf("got %d %q, want %d %q\nresponse:\n%s", res.StatusCode, res.Reason, tc.code, tc.reason, res)
			}
			for h, want := range tc.headers {
				if res.GetHeader(h) == nil {
					t.Fatalf("response lacks %s:\n%s", h, res)
				}
				if got := header(res, h); !strings.Contains(got, want) {
					t.Errorf("%s = %q, want it to contain %q", h, got, want)
				}
			}
			if res.StatusCode >= 300 && res.GetHeader("Warning") == nil && tc.code != 407 {
				t.Errorf("rejection without Warning saying why:\n%s", res)
			}
			if w := header(res, "Warning"); strings.Contains(w, "strconv") || strings.Contains(w, "parsing") {
				t.Errorf("Warning passes on the parser's internals: %s", w)
			}
		})
	}
	// The PBX is still up and answering after all of that.
	if res := c.Do(c.Build(reqSpec{Method: "OPTIONS", To: "200"})); res.StatusCode != 200 {
		t.Fatalf("after the rejections OPTIONS got %d", res.StatusCode)
	}
}

// TestDigestChallengeAlgorithms: the 401 to REGISTER and the 407 to INVITE offer one challenge per
// configured algorithm, in the configured order. The default is MD5 alone, so that phones which
// fail on a SHA-256 challenge (Debian's baresip 1.0) register; SHA-256 is one setting away.
func TestDigestChallengeAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		name string
		algs []string // Config.DigestAlgorithms
		want []string // the challenges' algorithms, top first
	}{
		{"default", nil, []string{"MD5"}},
		{"sha-256 preferred", []string{"SHA-256", "MD5"}, []string{"SHA-256", "MD5"}},
		{"md5 preferred", []string{"MD5", "SHA-256"}, []string{"MD5", "SHA-256"}},
		{"sha-256 only", []string{"SHA-256"}, []string{"SHA-256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := startPBX(t, pbx.Config{DigestAlgorithms: tc.algs})
			c := newClient(t, tp.addr)
			reg := c.Do(c.Build(registerSpec("100", "algs", 1, "Contact: <sip:100@10.0.0.1>")))
			inv := c.Do(c.Build(reqSpec{Method: "INVITE", From: "100", To: "200", Headers: []string{"Content-Type: application/sdp"}, Body: sdpBody}))
			for _, tr := range []struct {
				res    *sip.Response
				code   int
				header string
			}{{reg, 401, "WWW-Authenticate"}, {inv, 407, "Proxy-Authenticate"}} {
				if tr.res.StatusCode != tr.code {
					t.Fatalf("got %d, want %d", tr.res.StatusCode, tr.code)
				}
				if got := challengeAlgorithms(t, tr.res, tr.header); !slices.Equal(got, tc.want) {
					t.Errorf("%d offers %v, want %v", tr.code, got, tc.want)
				}
				if ch := header(tr.res, tr.header); !strings.Contains(ch, `realm="pbx.test"`) || !strings.Contains(ch, `qop="auth"`) {
					t.Errorf("%d challenge %q lacks the realm or qop", tr.code, ch)
				}
			}
		})
	}
}

// TestDigestAlgorithmNotOfferedRefused: with SHA-256 alone, right MD5 credentials are not accepted
// (they get a new challenge), and SHA-256 ones are.
func TestDigestAlgorithmNotOfferedRefused(t *testing.T) {
	tp := startPBX(t, pbx.Config{DigestAlgorithms: []string{"SHA-256"}})
	tp.addExt(t, "100", "pw100")
	c := newClient(t, tp.addr)
	r := registerSpec("100", "not-offered", 1, "Contact: <sip:100@10.0.0.1>")
	chal := c.Do(c.Build(r))
	md5 := strings.Replace(chal.String(), "algorithm=SHA-256", "algorithm=MD5", 1)
	msg, err := sip.ParseMessage([]byte(md5))
	if err != nil {
		t.Fatal(err)
	}
	r.CSeq = 2
	r.Headers = append(r.Headers, authorize(t, msg.(*sip.Response), r, "100", "pw100", "MD5"))
	if res := c.Do(c.Build(r)); res.StatusCode != 401 {
		t.Fatalf("MD5 credentials where only SHA-256 is offered: %d, want 401", res.StatusCode)
	}
	if res := register(t, c, registerSpec("100", "offered", 1, "Contact: <sip:100@10.0.0.1>"), "100", "pw100", "SHA-256"); res.StatusCode != 200 {
		t.Fatalf("SHA-256 credentials: %d", res.StatusCode)
	}
}

// challengeAlgorithms returns the algorithm of each challenge header, top first.
func challengeAlgorithms(t *testing.T, res *sip.Response, name string) []string {
	t.Helper()
	var out []string
	for _, h := range res.GetHeaders(name) {
		c, err := digest.ParseChallenge(h.Value())
		if err != nil {
			t.Fatalf("bad challenge %q: %v", h.Value(), err)
		}
		out = append(out, c.Algorithm)
	}
	return out
}

func TestMergedRequest(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	c := newClient(t, tp.addr)
	r := reqSpec{Method: "INVITE", From: "100", To: "200", CallID: "merge-1@test", Headers: []string{"Content-Type: application/sdp", "From: <sip:100@pbx.test>;tag=same"}, Body: sdpBody}
	r.Branch = "z9hG4bK-first"
	if res := c.Do(c.Build(r)); res.StatusCode != 407 {
		t.Fatalf("first copy: %d", res.StatusCode)
	}
	r.Branch = "z9hG4bK-second"
	if res := c.Do(c.Build(r)); res.StatusCode != 482 || res.Reason != "Loop Detected" {
		t.Fatalf("second copy by another path: %d %s, want 482", res.StatusCode, res.Reason)
	}
}

func TestTrustedSourceSkipsAuth(t *testing.T) {
	tp := startPBX(t, pbx.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	c := newClient(t, tp.addr)
	res := c.Do(c.Build(reqSpec{Method: "INVITE", From: "100", To: "200", Headers: []string{"Content-Type: application/sdp"}, Body: sdpBody}))
	if res.StatusCode == 407 || res.StatusCode == 401 {
		t.Fatalf("trusted source was challenged: %d", res.StatusCode)
	}
}

func TestTCPListener(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	if tp.TCPAddr().Port != tp.UDPAddr().Port {
		t.Fatalf("tcp port %d differs from udp %d", tp.TCPAddr().Port, tp.UDPAddr().Port)
	}
	res := tcpExchange(t, tp.TCPAddr().String(), "OPTIONS")
	if !strings.HasPrefix(res, "SIP/2.0 200 OK\r\n") || !strings.Contains(res, "Allow: INVITE") {
		t.Fatalf("tcp OPTIONS answer:\n%s", res)
	}
	_ = time.Second
}

func dropHeader(msg, name string) string {
	var out []string
	for _, l := range strings.Split(msg, "\r\n") {
		if n, _, ok := strings.Cut(l, ":"); ok && strings.EqualFold(n, name) {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n")
}

func addHeader(msg, line string) string {
	return strings.Replace(msg, "\r\n", "\r\n"+line+"\r\n", 1)
}

// TestLargeUDPResponse: an answer larger than sipgo's default UDP limit (1300 bytes) still goes
// back over UDP, the way the request came (RFC 3261 §18.2.2), because New raises sip.UDPMTUSize.
// An OPTIONS that passed 40 proxies gets a 200 that copies their 40 Via headers (§8.2.6.2).
func TestLargeUDPResponse(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	c := newClient(t, tp.addr)
	vias := []string{fmt.Sprintf("Via: SIP/2.0/UDP %s;branch=z9hG4bK-large-%d;rport", c.Addr(), time.Now().UnixNano())}
	for i := range 40 {
		vias = append(vias, fmt.Sprintf("Via: SIP/2.0/UDP proxy%02d.example.com:5060;branch=z9hG4bK-proxy-%02d-0123456789", i, i))
	}
	res, raw := c.DoRaw(c.Build(reqSpec{Method: "OPTIONS", To: "200", Headers: vias}))
	if res.StatusCode != 200 || len(res.GetHeaders("Via")) != len(vias) {
		t.Fatalf("got %d with %d Vias, want 200 with %d", res.StatusCode, len(res.GetHeaders("Via")), len(vias))
	}
	if len(raw) <= 1300 {
		t.Fatalf("answer of %d bytes does not test the limit", len(raw))
	}
}

// TestMalformedFloodLogsAFew: a burst of broken datagrams is answered in full, but logged only a
// few lines a second.
func TestMalformedFloodLogsAFew(t *testing.T) {
	tp := startPBX(t, pbx.Config{})
	c := newClient(t, tp.addr)
	for range 50 {
		c.Send(c.Build(reqSpec{Method: "OPTIONS", To: "200", Headers: []string{"Content-Length: -5"}}))
	}
	for range 50 {
		if res := c.Recv(5 * time.Second); res == nil || res.StatusCode != 400 {
			t.Fatalf("answer to a broken request: %v", res)
		}
	}
	if n := strings.Count(tp.logs.String(), `msg="malformed request rejected"`); n > 10 {
		t.Fatalf("%d log lines for 50 broken datagrams in a second, want at most 10", n)
	}
}
