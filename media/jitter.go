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
	pos, skip, n := j.place(ts, ssrc, len(payload))
	src := payload[skip:n]
	a, b := j.spans(pos, len(src))
	dec := l.dec
	for i, x := range src[:len(a)] {
		a[i] = dec[x]
	}
	for i, x := range src[len(a):] {
		b[i] = dec[x]
	}
}

// putPCM puts decoded samples with RTP timestamp ts and SSRC ssrc into the ring.
func (j *jitter) putPCM(ts, ssrc uint32, pcm []int16) {
	pos, skip, n := j.place(ts, ssrc, len(pcm))
	src := pcm[skip:n]
	a, b := j.spans(pos, len(src))
	copy(a, src)
	copy(b, src[len(a):])
}

// place decides where length samples stamped ts go: the ring position of the first one kept, and
// which of them are kept ([skip:n]: the head may have played already, the tail may not fit).
// Nothing is kept (skip == n) from a packet that is all late.
func (j *jitter) place(ts, ssrc uint32, length int) (pos, skip, n int) {
	n = min(length, jitterSamples-jitterDelay)
	if n == 0 {
		return 0, 0, 0
	}
	if !j.synced || ssrc != j.ssrc {
		j.sync(ts, ssrc)
	}
	d := int32(ts + j.off - j.rd) // where it goes, relative to the reader
	switch {
	case d+int32(n) <= 0: // all of it already played
		if j.late++; j.late <= maxLate {
			return 0, 0, 0
		}
		j.sync(ts, ssrc)
		d = jitterDelay
	case d+int32(n) > jitterSamples: // beyond the ring
		j.sync(ts, ssrc)
		d = jitterDelay
	}
	j.late = 0
	j.next = ts + uint32(length)
	if d < 0 { // the head of it already played
		skip = int(-d)
	}
	return int((j.rd + uint32(d) + uint32(skip)) % jitterSamples), skip, n
}

// spans returns the ring's room for n samples from pos: a run up to the ring's end and the rest
// from its start (often empty), and marks their frames received.
func (j *jitter) spans(pos, n int) (a, b []int16) {
	if n == 0 {
		return nil, nil
	}
	end := pos + n
	a = j.ring[pos:min(end, jitterSamples)]
	b = j.ring[:max(0, end-jitterSamples)]
	for s := pos / frameSamples; s <= (min(end, jitterSamples)-1)/frameSamples; s++ {
		j.filled[s] = true
	}
	for s := 0; s*frameSamples < len(b); s++ {
		j.filled[s] = true
	}
	return a, b
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
	j.resume()
	j.put(l, j.next, j.ssrc, payload)
}

// putNextPCM is putNext for decoded samples.
func (j *jitter) putNextPCM(pcm []int16) {
	j.resume()
	j.putPCM(j.next, j.ssrc, pcm)
}

// resume starts a stream without timestamps again when the reader passed its end.
func (j *jitter) resume() {
	if j.synced && int32(j.next+j.off-j.rd) < 0 {
		j.synced = false
	}
}
