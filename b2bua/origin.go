package b2bua

import (
	"bytes"
	"math/rand/v2"
	"strconv"
)

// origin keeps the o= line of the session descriptions the PBX sends in one dialog (RFC 3264 §8,
// RFC 4566 §5.2): the same username and session id for the dialog's whole life, the version one
// higher each time the description changes. Without it the PBX passed on whatever origin the
// other side used, and a transfer, which puts another party behind the same dialog, changed the
// session id in the middle of a session (some phones take that for a new session or refuse it);
// the username also named the other party. The address stays the one the description gave (the
// PBX's own with the media relay). Guarded by the call's mu, like its dialog.
type origin struct {
	id      uint64 // session id and first version; 0 until the first description
	version uint64
	last    []byte // the last description sent, its o= line left out
}

// stamp returns sdp with the dialog's origin; sdp without an o= line is returned as it is.
func (o *origin) stamp(sdp []byte) []byte {
	line, rest, ok := cutOrigin(sdp)
	if !ok {
		return sdp
	}
	fields := bytes.Fields(line)
	if len(fields) != 6 {
		return sdp
	}
	switch {
	case o.id == 0:
		o.id = rand.Uint64N(1<<62) + 1
		o.version = o.id
	case !bytes.Equal(rest, o.last):
		o.version++
	}
	o.last = rest
	var out bytes.Buffer
	out.Grow(len(sdp) + 32)
	start := bytes.Index(sdp, line) - len("o=")
	out.Write(sdp[:start])
	out.WriteString("o=pbxkit ")
	out.WriteString(strconv.FormatUint(o.id, 10))
	out.WriteByte(' ')
	out.WriteString(strconv.FormatUint(o.version, 10))
	for _, f := range fields[3:] {
		out.WriteByte(' ')
		out.Write(f)
	}
	out.Write(sdp[start+len("o=")+len(line):])
	return out.Bytes()
}

// cutOrigin finds the session's o= line (its value, without "o=" and the line break) and returns
// the description without that line, to compare descriptions by everything but their origin.
func cutOrigin(sdp []byte) (line, rest []byte, ok bool) {
	for off := 0; off < len(sdp); {
		end := bytes.IndexByte(sdp[off:], '\n')
		next := len(sdp)
		if end >= 0 {
			next = off + end + 1
		}
		l := bytes.TrimRight(sdp[off:next], "\r\n")
		if bytes.HasPrefix(l, []byte("o=")) {
			rest = append(append([]byte(nil), sdp[:off]...), sdp[next:]...)
			return l[2:], rest, true
		}
		if bytes.HasPrefix(l, []byte("m=")) {
			break // session-level lines come before the first media description
		}
		off = next
	}
	return nil, nil, false
}

// stampSDP gives a description the PBX sends in dialog d the dialog's origin; other bodies, and
// an empty one, pass unchanged.
func (c *Call) stampSDP(d *dialogSide, body []byte) []byte {
	if len(body) == 0 {
		return body
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return d.origin.stamp(body)
}
