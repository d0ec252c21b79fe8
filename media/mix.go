package media

import (
	"math"
	"time"
)

// The room's clock and mixer.

// run is the room's goroutine: a frame every 20 ms until the room closes. Frames are counted
// against the start time, so a late tick is made up (up to maxBurst frames at once) and the room
// keeps the phones' pace, which their jitter buffers follow.
func (r *Room) run() {
	defer close(r.done)
	t := time.NewTicker(framePeriod)
	defer t.Stop()
	start := time.Now()
	var mixed int64
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		due := int64(time.Since(start) / framePeriod)
		if behind := due - mixed; behind > maxBurst {
			r.skip(int(behind - maxBurst))
			mixed = due - maxBurst
		}
		for ; mixed < due; mixed++ {
			r.mixFrame()
		}
	}
}

// mixFrame mixes one frame and sends it to every participant.
func (r *Room) mixFrame() {
	r.tick.Lock()
	defer r.tick.Unlock()
	r.mu.Lock()
	r.active = append(r.active[:0], r.members...)
	if r.tone != nil {
		r.playing, r.tone = r.tone, nil
	}
	r.mu.Unlock()

	sum := &r.sum
	clear(sum[:])
	for _, p := range r.active {
		p.adds = p.takeFrame() && !p.muted.Load()
		if p.adds {
			for i, v := range p.in {
				sum[i] += int32(v)
			}
		}
	}
	if len(r.playing) > 0 {
		n := min(len(r.playing), frameSamples)
		for i, v := range r.playing[:n] {
			sum[i] += int32(v)
		}
		r.playing = r.playing[n:]
	}
	r.plain[0].ok, r.plain[1].ok = false, false
	for _, p := range r.active {
		if p.send == nil {
			p.queue(&r.sum)
		} else {
			p.send(r.frameFor(p))
		}
	}
	clear(r.active) // no pointers kept to participants that leave
}

// frameFor encodes what p hears: the sum without p's own frame, in p's law.
func (r *Room) frameFor(p *Participant) []byte {
	if !p.adds {
		pf := &r.plain[0]
		if p.out == alaw {
			pf = &r.plain[1]
		}
		if !pf.ok {
			encodeSum(pf.frame[:], &r.sum, nil, p.out)
			pf.ok = true
		}
		return pf.frame[:]
	}
	encodeSum(p.frame[:], &r.sum, &p.in, p.out)
	return p.frame[:]
}

// queue puts what p hears, the sum without p's own frame, in p's queue, to be pulled.
func (p *Participant) queue(sum *[frameSamples]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dst := p.pending.push()
	if !p.adds {
		for i, s := range sum {
			dst[i] = saturate(s)
		}
		return
	}
	for i, s := range sum {
		dst[i] = saturate(s - int32(p.in[i]))
	}
}

// encodeSum writes sum minus own (nil: nothing), saturated to 16 bits, into dst in law l.
func encodeSum(dst []byte, sum *[frameSamples]int32, own *[frameSamples]int16, l *law) {
	dst = dst[:frameSamples]
	if own == nil {
		for i, s := range sum {
			dst[i] = l.encode(saturate(s))
		}
		return
	}
	for i, s := range sum {
		dst[i] = l.encode(saturate(s - int32(own[i])))
	}
}

// saturate clips s to the 16-bit range.
func saturate(s int32) int16 {
	return int16(max(math.MinInt16, min(math.MaxInt16, s)))
}

// skip drops n frames of every participant's buffer, for a clock that fell too far behind.
func (r *Room) skip(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.members {
		p.mu.Lock()
		for range min(n, jitterFrames) {
			p.jit.take(&p.in) // p.in is the clock goroutine's: free between frames
		}
		p.jit.rd += uint32(max(0, n-jitterFrames)) * frameSamples
		p.mu.Unlock()
	}
}
