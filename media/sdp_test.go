package media

import (
	"errors"
	"net"
	"strings"
	"testing"
)

const phoneOffer = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.168.1.10\r\ns=-\r\n" +
	"c=IN IP4 192.168.1.10\r\nt=0 0\r\n" +
	"m=audio 49170 RTP/AVP 0 8 18 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-15\r\na=rtcp:49175 IN IP4 192.168.1.10\r\na=candidate:1 1 UDP 2130706431 192.168.1.10 49170 typ host\r\n" +
	"a=sendrecv\r\nm=video 51372 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"

func TestRewriteHidesTheSide(t *testing.T) {
	sd, err := ParseSDP([]byte(phoneOffer))
	if err != nil {
		t.Fatal(err)
	}
	st, ok := AudioStream(sd)
	if !ok || st.RTP.String() != "192.168.1.10:49170" || st.RTCP.String() != "192.168.1.10:49175" || st.Mux || st.Direction != "sendrecv" {
		t.Fatalf("stream %+v", st)
	}
	out, err := Rewrite(sd, net.ParseIP("10.0.0.1"), 30000, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "192.168.1.10") {
		t.Fatalf("the side's address leaks:\n%s", s)
	}
	for _, want := range []string{"o=alice 2890844526 2890844526 IN IP4 10.0.0.1", "c=IN IP4 10.0.0.1",
		"m=audio 30000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "m=video 0 RTP/AVP 96"} {
		if !strings.Contains(s, want+"\r\n") {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
	for _, gone := range []string{"G729", "fmtp:18", "candidate", "a=rtcp:", "H264"} {
		if strings.Contains(s, gone) {
			t.Errorf("%q should be gone from\n%s", gone, s)
		}
	}
	again, err := ParseSDP(out)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := AudioStream(again); st.RTP.String() != "10.0.0.1:30000" {
		t.Fatalf("rewritten stream %+v", st)
	}
}

func TestParseSDPLenient(t *testing.T) {
	// c= after t= and a= before c= in the media section: out of RFC 4566 order, as some phones send.
	body := "v=0\no=- 1 1 IN IP4 10.1.1.1\ns=call\nt=0 0\nc=IN IP4 10.1.1.1\n" +
		"m=audio 4000 RTP/AVP 8\na=rtcp-mux\nc=IN IP4 10.1.1.2\na=sendonly\n"
	sd, err := ParseSDP([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := AudioStream(sd)
	if st.RTP.String() != "10.1.1.2:4000" || !st.Mux || st.RTCP != st.RTP || st.Direction != "sendonly" || !st.OnHold() {
		t.Fatalf("stream %+v", st)
	}
}

func TestSDPRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want error
	}{
		"garbage":       {"hello world", ErrMalformedSDP},
		"no connection": {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", ErrMalformedSDP},
		"unknown line":  {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nx=1\r\nm=audio 4000 RTP/AVP 0\r\n", ErrMalformedSDP},
		"only g729":     {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n", ErrNoCodec},
		"only dtmf":     {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n", ErrNoCodec},
		"video only":    {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n", ErrNoCodec},
	} {
		t.Run(name, func(t *testing.T) {
			sd, err := ParseSDP([]byte(tc.body))
			if err == nil {
				_, err = Rewrite(sd, net.ParseIP("10.0.0.1"), 30000, nil)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzSDP(f *testing.F) {
	f.Add([]byte(phoneOffer))
	f.Add([]byte("v=0\no=- 1 1 IN IP4 10.1.1.1\ns=call\nt=0 0\nc=IN IP4 10.1.1.1\nm=audio 4000 RTP/AVP 8\na=rtcp-mux\n"))
	f.Add([]byte("v=0\r\nm=audio 0 RTP/AVP\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		sd, err := ParseSDP(body)
		if err != nil {
			return
		}
		AudioStream(sd)
		out, err := Rewrite(sd, net.ParseIP("10.0.0.1"), 30000, nil)
		if err != nil {
			return
		}
		again, err := ParseSDP(out)
		if err != nil {
			t.Fatalf("rewritten SDP does not parse: %v\n%q", err, out)
		}
		if st, ok := AudioStream(again); !ok || st.RTP == nil || st.RTP.Port != 30000 || !st.RTP.IP.Equal(net.ParseIP("10.0.0.1")) {
			t.Fatalf("rewritten stream %+v from %q", st, out)
		}
	})
}

// The default policy keeps PCMU, PCMA, G722, opus and telephone-event, in the offer's order, and
// drops the rest.
func TestRewriteDefaultCodecs(t *testing.T) {
	offer := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 9 111 18 3 8 0 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:111 opus/48000/2\r\n" +
		"a=rtpmap:18 G729/8000\r\na=rtpmap:3 GSM/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
	sd, err := ParseSDP([]byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Rewrite(sd, net.ParseIP("10.0.0.1"), 30000, DefaultCodecs)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); !strings.Contains(s, "m=audio 30000 RTP/AVP 9 111 8 0 101\r\n") || strings.Contains(s, "G729") || strings.Contains(s, "GSM") {
		t.Fatalf("default codec policy:\n%s", s)
	}
}
