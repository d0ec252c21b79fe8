package dialplan_test

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/internal/audiotest"
	"github.com/pbxkit/pbxkit/internal/callmedia"
	"github.com/pbxkit/pbxkit/media"
)

// confScript puts every caller in room "sales" behind PIN 1234; 801 is the moderator.
const confScript = `
function route(call)
  local r = call:conference("sales", {pin = 1234, moderator = call.to == "801"})
  print("conference", r.status, r.reason)
end
`

// confCaller is a caller in the Lua conference: it keys the PIN, then sends a tone.
type confCaller struct {
	phone *b2buatest.Phone
	rtp   *b2buatest.RTP
	inv   *sip.Request
	ok    *sip.Response
	pbx   netip.AddrPort
	freq  float64
}

func callConference(t *testing.T, s *b2buatest.Server, number, pin string, freq float64) *confCaller {
	t.Helper()
	c := &confCaller{phone: s.Phone(t), rtp: b2buatest.NewRTP(t), freq: freq}
	msg, inv := c.phone.Invite("100", number, nil, c.rtp.SDP())
	c.phone.Send(msg)
	c.ok = c.phone.WaitResponse(200)
	c.inv = inv
	c.phone.Send(c.phone.InDialog("ACK", inv, c.ok, 1))
	c.pbx = b2buatest.MediaAddr(t, c.ok.Body())
	c.rtp.SendDigits(c.pbx, pin)
	if freq > 0 {
		t.Cleanup(c.rtp.SendTone(c.pbx, freq))
	}
	return c
}

// The Lua verb over real SIP and RTP: three callers who keyed the PIN each hear the other two and
// not themselves; a wrong PIN gets 403 back in the script; a hang-up 200.
func TestLuaConference(t *testing.T) {
	logs := &logLines{}
	l := newLua(t, confScript, dialplan.LuaConfig{Logger: logTo(&logs.mu, &logs.lines)})
	rooms := media.NewConferences(nil)
	t.Cleanup(rooms.Close)
	s := b2buatest.NewServer(t, b2bua.Config{Media: b2buatest.MediaRelay(t, 8),
		Conferences: callmedia.Conferences(rooms)}, l.Handle)

	var cs []*confCaller
	for _, f := range []float64{400, 900, 1700} {
		cs = append(cs, callConference(t, s, "800", "1234#", f))
	}
	for deadline := time.Now().Add(2 * b2buatest.Wait); len(rooms.List()) == 0 || len(rooms.List()[0].Participants) < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("rooms: %+v", rooms.List())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range cs {
		c.rtp.Reset()
	}
	for i, c := range cs {
		got := c.rtp.WaitAudio(7200, 2*b2buatest.Wait)[3200:7200] // after the join tones
		for j, o := range cs {
			a := toneLevel(got, o.freq)
			if heard := a > 8000/3; heard != (i != j) || !heard && a > 8000/10 {
				t.Errorf("caller %d (%v Hz) hears %v Hz at %.0f", i, c.freq, o.freq, a)
			}
		}
	}

	wrong := callConference(t, s, "800", "1111#2222#3333#", 0)
	logs.wait(t, "conference\t403\twrong PIN")
	wrong.phone.Respond(wrong.phone.WaitRequest(sip.BYE), 200, "OK", "")

	for _, c := range cs {
		c.phone.Send(c.phone.InDialog("BYE", c.inv, c.ok, 2))
		c.phone.WaitResponse(200)
	}
	logs.wait(t, "conference\t200\tleft the conference (hangup)")
	s.WaitIdle()
	if got := rooms.List(); len(got) != 0 {
		t.Fatalf("rooms after everyone left: %+v", got)
	}
}

// A PIN that is not keys is the script's error: 500.
func TestLuaConferenceBadPIN(t *testing.T) {
	l := newLua(t, `function route(call) call:conference("sales", {pin = "12#4"}) end`, dialplan.LuaConfig{})
	rooms := media.NewConferences(nil)
	t.Cleanup(rooms.Close)
	s := b2buatest.NewServer(t, b2bua.Config{Media: b2buatest.MediaRelay(t, 8),
		Conferences: callmedia.Conferences(rooms)}, l.Handle)
	caller := s.Phone(t)
	msg, inv := caller.Invite("100", "800", nil, b2buatest.NewRTP(t).SDP())
	caller.Send(msg)
	caller.AckFinal(inv, caller.WaitResponse(500))
	s.WaitIdle()
}

// toneLevel is the amplitude of freq in samples at 8 kHz: about A for a sine of amplitude A
// (audiotest.Goertzel gives the power, A²/4).
func toneLevel(samples []int16, freq float64) float64 {
	return 2 * math.Sqrt(audiotest.Goertzel(samples, 8000, freq))
}
