package b2bua

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"time"
)

// Conference rooms (call:conference): the PBX answers the caller, asks for the room's PIN when it
// has one, and makes the caller a member of the room: the room's mix is what the caller hears, and
// what the caller says goes into it, through the relay's port facing the caller (the call's
// application end passes both to the member). The rooms themselves (mixing, mute, kick) are the
// PBX's (media.Conferences, adapted by internal/callmedia).

// Conferences is where Call.Conference finds its rooms.
type Conferences interface {
	// Join makes a caller a member of the room named room, made on first use. An error with a
	// *StatusError says how to refuse the caller (486 when the room is full).
	Join(room string, m ConferenceJoin) (ConferenceMember, error)
}

// ConferenceJoin describes a caller joining a room.
type ConferenceJoin struct {
	// Name labels the member in listings: the caller's number.
	Name string
	// Moderator marks a member whose leaving ends the conference when no other moderator is in.
	Moderator bool
	// SDP is the PBX's answer to the caller: the G.711 codec the caller hears.
	SDP []byte
}

// ConferenceMember is a caller's seat in a room: its audio in and out, and its end.
type ConferenceMember interface {
	MediaApp
	// Done is closed when the member is out of the room: kicked, or the conference ended.
	Done() <-chan struct{}
	// Leave takes the member out of the room; it may be called more than once.
	Leave()
}

// ConferenceOptions say how Conference joins a room.
type ConferenceOptions struct {
	// PIN, when set, must be keyed in (then '#', or after its length in keys) before the caller
	// joins: PINTries tries, PINTimeout each, a beep before each, a busy tone after a wrong one.
	PIN string
	// Moderator: when the last moderator leaves, the conference ends for everyone.
	Moderator bool
}

// PIN prompts of Conference.
const (
	PINTries   = 3
	PINTimeout = 10 * time.Second
)

// Errors of Conference.
var (
	ErrNoConferences = errors.New("b2bua: the PBX has no conference rooms (Config.Conferences)")
	ErrWrongPIN      = errors.New("b2bua: wrong conference PIN")
)

// How a caller's time in a conference ended (ConferenceResult.Ended).
const (
	ConferenceHangup = "hangup" // the caller hung up (or the call ended otherwise)
	ConferenceKicked = "kicked" // taken out: the admin API, or the last moderator left
	ConferenceCancel = "cancel" // ctx ended
)

// ConferenceResult says how Conference went.
type ConferenceResult struct {
	// Room is the room's name.
	Room string
	// Ended is ConferenceHangup, ConferenceKicked or ConferenceCancel.
	Ended string
	// Duration is how long the caller was in the room.
	Duration time.Duration
}

// Conference answers the caller (unless the PBX did already), asks for opts.PIN when set (see
// ConferenceOptions), and puts the caller in the room named room until the caller hangs up, is
// taken out of the room (then Conference hangs the caller up: Ended is ConferenceKicked), or ctx
// ends. Errors: ErrNoConferences, ErrNoRelay (the PBX answers only
// with the media relay), ErrWrongPIN after PINTries wrong tries, a *StatusError of the room (486
// full) or of the answer (488: no G.711 codec in the caller's offer, the caller is refused with
// it), ErrDecided when the call ended first.
func (c *Call) Conference(ctx context.Context, room string, opts ConferenceOptions) (ConferenceResult, error) {
	rooms := c.e.cfg.Conferences
	if rooms == nil {
		return ConferenceResult{}, ErrNoConferences
	}
	if err := c.answerForApp(ctx); err != nil {
		return ConferenceResult{}, err
	}
	if opts.PIN != "" {
		if err := c.askPIN(ctx, room, opts.PIN); err != nil {
			return ConferenceResult{}, err
		}
	}
	app, _, err := c.appEnd()
	if err != nil {
		return ConferenceResult{}, err
	}
	m, err := rooms.Join(room, ConferenceJoin{Name: c.Record().Caller, Moderator: opts.Moderator, SDP: c.appSDP()})
	if err != nil {
		c.log.Info("conference refused the caller", "room", room, "error", err)
		return ConferenceResult{}, err
	}
	defer m.Leave()
	app.join(m)
	defer app.join(nil)
	start := time.Now()
	c.log.Info("caller joined a conference", "room", room, "moderator", opts.Moderator)
	res := ConferenceResult{Room: room}
	select {
	case <-app.gone:
		res.Ended = ConferenceHangup
	case <-m.Done():
		res.Ended = ConferenceKicked
	case <-ctx.Done():
		res.Ended = ConferenceCancel
	}
	res.Duration = time.Since(start)
	c.log.Info("caller left a conference", "room", room, "ended", res.Ended, "seconds", int(res.Duration.Seconds()))
	if res.Ended == ConferenceKicked {
		c.Hangup("conference: " + ConferenceKicked) // taken out by an operator, or the conference ended: out
	}
	return res, nil
}

// answerForApp answers the caller with the PBX's own media unless it is already the caller's
// other end. A caller whose offer the PBX cannot answer (488: no G.711) is refused with that
// status.
func (c *Call) answerForApp(ctx context.Context) error {
	if c.InApplication() {
		return nil
	}
	err := c.Answer(ctx)
	var se *StatusError
	if errors.As(err, &se) && !c.Decided() {
		c.log.Info("the PBX cannot answer the caller's offer", "status", se.Code, "error", err)
		if rerr := c.Reject(se.Code, ""); rerr != nil {
			return rerr
		}
	}
	return err
}

// askPIN asks the caller for room's pin: a beep, the keys (up to '#' or len(pin) of them), a
// busy tone after a wrong one, PINTries times. Wrong PINs are counted per room across calls:
// after pinguard.DefaultLimit in a row the room is locked out for a while (15 minutes,
// doubling), and any PIN is refused unchecked. Not per source address: the engine sees the
// packet's source, which behind a SIP load balancer is the balancer's for every caller (the
// PBX's auth ban, which knows its proxies, covers sources).
func (c *Call) askPIN(ctx context.Context, room, pin string) error {
	keys := []string{"room:" + room}
	src := c.Request().Source()
	if host, _, err := net.SplitHostPort(src); err == nil {
		src = host
	}
	for try := 1; try <= PINTries; try++ {
		got, err := c.Gather(ctx, GatherOptions{Max: len(pin), Timeout: PINTimeout, Terminator: DefaultTerminator,
			Prompt: "tone:beep"})
		if err != nil {
			return err
		}
		if c.pinAllowed(keys, room, src) && subtle.ConstantTimeCompare([]byte(got), []byte(pin)) == 1 {
			c.e.pins.Succeed(keys[0])
			return nil
		}
		c.log.Info("wrong conference PIN", "try", try, "room", room)
		for _, k := range keys {
			if until := c.e.pins.Fail(k); !until.IsZero() {
				c.log.Warn("conference locked out after wrong PINs", "room", room, "key", k, "src_ip", src,
					"until", until.UTC().Format("15:04:05"))
			}
		}
		if _, err := c.Play(ctx, []string{"tone:busy"}, PlayOptions{}); err != nil {
			return err
		}
		if app := c.application(); app != nil {
			app.dropFirst('#') // the '#' after a PIN keyed in full (Gather stopped at its length)
		}
	}
	return ErrWrongPIN
}

// pinAllowed reports whether a PIN may be checked: neither the room nor the source is locked.
func (c *Call) pinAllowed(keys []string, room, src string) bool {
	for _, k := range keys {
		if locked, until := c.e.pins.Locked(k); locked {
			c.log.Warn("conference PIN refused: locked out", "room", room, "key", k, "src_ip", src,
				"until", until.UTC().Format("15:04:05"))
			return false
		}
	}
	return true
}

// dropFirst removes the oldest key press waiting if it is k.
func (a *callApp) dropFirst(k byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.keys) > 0 && a.keys[0] == k {
		a.keys = a.keys[1:]
	}
}
