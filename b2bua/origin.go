package b2bua

import (
	"bytes"
	"hash/maphash"
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
	last    uint64 // hash of the last description sent, its o= line left out
}

// originSeed keys the hashes of the descriptions (64 bits: two different descriptions of one
// dialog hashing alike, which would leave the version as it was, is not a case to plan for). A
// hash, not the description: a held call keeps one per dialog.
var originSeed = maphash.MakeSeed()

// stamp returns sdp with the dialog's origin; sdp without an o= line is returned as it is.
func (o *origin) stamp(sdp []byte) []byte {
	start, end, ok := findOrigin(sdp)
	if !ok {
		return sdp
	}
	line := bytes.TrimRight(sdp[start:end], "\r\n")[len("o="):]
	fields := bytes.Fields(line)
	if len(fields) != 6 {
		return sdp
	}
	var h maphash.Hash
	h.SetSeed(originSeed)
	h.Write(sdp[:start])
	h.Write(sdp[end:])
	rest := h.Sum64()
	switch {
	case o.id == 0:
		o.id = rand.Uint64N(1<<62) + 1
		o.version = o.id
	case rest != o.last:
		o.version++
	}
	o.last = rest
	var out bytes.Buffer
	out.Grow(len(sdp) + 32)
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

// findOrigin finds the session's o= line: sdp[start:end] is the line with its line break, so
// that the description without it, to compare descriptions by everything but their origin, is
// sdp[:start] followed by sdp[end:].
func findOrigin(sdp []byte) (start, end int, ok bool) {
	for off := 0; off < len(sdp); {
		next := len(sdp)
		if i := bytes.IndexByte(sdp[off:], '\n'); i >= 0 {
			next = off + i + 1
		}
		l := sdp[off:next]
		if bytes.HasPrefix(l, []byte("o=")) {
			return off, next, true
		}
		if bytes.HasPrefix(l, []byte("m=")) {
			break // session-level lines come before the first media description
		}
		off = next
	}
	return 0, 0, false
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
