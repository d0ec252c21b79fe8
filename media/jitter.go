package media

// A conference participant's incoming audio waits in a small jitter buffer until the room's clock
// takes it, one 20 ms frame per tick.
//
// The buffer is a ring of decoded samples. A packet is placed by its RTP timestamp: the stream's
// first packet (and the first after a resynchronisation) lands jitterDelay ahead of the reader,
// and each later one where its timestamp says relative to it, so packets that arrive out of order
// or late by less than jitterDelay still play in their place, and a lost packet is silence. The
// reader clears what it took, so a slot never plays twice.
//
// A stream falls out of step when its timestamps jump (a new SSRC, a phone's new stream after
// hold), when the sender's clock runs faster than the room's until the ring is full, or when it
// runs slower (or its packets come ever later) until they arrive behind the reader: a packet
// beyond the ring, a new SSRC, or maxLate late packets in a row start again at jitterDelay. A
// drift of 100 ppm costs one such glitch every few minutes; a real fix (stretching silence) is
// not worth it for a conference leg.
const (
	jitterFrames  = 8                           // the ring: 160 ms
	jitterSamples = jitterFrames * frameSamples // 1,280 samples
	jitterDelay   = 2 * frameSamples            // 40 ms of jitter absorbed
	maxLate       = 3
)

// jitter is one participant's buffer. Its owner (Participant) locks around every method.
type jitter struct {
	ring   [jitterSamples]int16
	filled [jitterFrames]bool // a slot holds something received (else it is silence)
	rd     uint32             // the reader's position, in samples of the room's clock
	off    uint32             // room position = RTP timestamp + off
	ssrc   uint32
	synced bool
	late   int    // late packets in a row
	next   uint32 // the timestamp that follows the last packet (streams without timestamps)
}

// put decodes payload (G.711 of law l) with RTP timestamp ts and SSRC ssrc into the ring.
func (j *jitter) put(l *law, ts, ssrc uint32, payload []byte) {
	n := min(len(payload), jitterSamples-jitterDelay)
	if n == 0 {
		return
	}
	if !j.synced || ssrc != j.ssrc {
		j.sync(ts, ssrc)
	}
	d := int32(ts + j.off - j.rd) // where it goes, relative to the reader
	switch {
	case d+int32(n) <= 0: // all of it already played
		if j.late++; j.late <= maxLate {
			return
		}
		j.sync(ts, ssrc)
		d = jitterDelay
	case d+int32(n) > jitterSamples: // beyond the ring
		j.sync(ts, ssrc)
		d = jitterDelay
	}
	j.late = 0
	j.next = ts + uint32(len(payload))
	skip := 0
	if d < 0 { // the head of it already played
		skip = int(-d)
	}
	pos := int((j.rd + uint32(d) + uint32(skip)) % jitterSamples)
	dec := l.dec
	for rest := payload[skip:n]; len(rest) > 0; pos = 0 { // at most twice: up to the ring's end, then from its start
		dst := j.ring[pos:min(pos+len(rest), jitterSamples)]
		for i, b := range rest[:len(dst)] {
			dst[i] = dec[b]
		}
		for s := pos / frameSamples; s <= (pos+len(dst)-1)/frameSamples; s++ {
			j.filled[s] = true
		}
		rest = rest[len(dst):]
	}
}

// sync starts the stream again: timestamp ts lands jitterDelay ahead of the reader.
func (j *jitter) sync(ts, ssrc uint32) {
	j.off = j.rd + jitterDelay - ts
	j.ssrc, j.synced, j.late = ssrc, true, 0
}

// take moves the next frame into dst (silence where nothing arrived), clears it from the ring,
// and reports whether any of it was received.
func (j *jitter) take(dst *[frameSamples]int16) bool {
	slot := (j.rd % jitterSamples) / frameSamples
	src := j.ring[slot*frameSamples : (slot+1)*frameSamples]
	got := j.filled[slot]
	if got {
		copy(dst[:], src)
		clear(src)
		j.filled[slot] = false
	} else {
		clear(dst[:])
	}
	j.rd += frameSamples
	return got
}

// putNext puts payload right after the previous one, for a stream that comes without RTP
// timestamps: in order, one packet after the other. A stream that paused (the reader passed its
// end) starts again at jitterDelay.
func (j *jitter) putNext(l *law, payload []byte) {
	if j.synced && int32(j.next+j.off-j.rd) < 0 {
		j.synced = false
	}
	j.put(l, j.next, j.ssrc, payload)
}
