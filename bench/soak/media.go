package main

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// stream is one side's RTP: a socket of its own (its address is what the side's SDP names, so the
// relay learns it at once), G.711 PCMU frames of 20 ms (160 bytes of payload) sent to the relay's
// port facing the side, and a count of what came back.
type stream struct {
	conn  *net.UDPConn
	port  int
	peer  atomic.Pointer[net.UDPAddr]
	on    atomic.Bool // sending
	seq   uint16
	ts    uint32
	ssrc  uint32
	sent  atomic.Int64
	recvd atomic.Int64
	done  chan struct{}
}

func newStream() (*stream, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	st := &stream{conn: c, port: c.LocalAddr().(*net.UDPAddr).Port, seq: uint16(rand.Uint32()),
		ts: rand.Uint32(), ssrc: rand.Uint32(), done: make(chan struct{})}
	go st.read()
	return st, nil
}

func (st *stream) read() {
	defer close(st.done)
	buf := make([]byte, 2048)
	for {
		n, _, err := st.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if n >= 12 && buf[0]>>6 == 2 {
			st.recvd.Add(1)
		}
	}
}

// start sends to the relay's port from now on (the media loop's next tick).
func (st *stream) start(relay *net.UDPAddr) {
	st.peer.Store(relay)
	st.on.Store(true)
}

// close stops sending and closes the socket.
func (st *stream) close() {
	st.on.Store(false)
	st.conn.Close()
	<-st.done
}

// mediaLoop sends one packet per sending stream every 20 ms. One loop for all streams keeps the
// generator cheap: the PBX, not the soak, should have the CPU.
type mediaLoop struct {
	mu      sync.Mutex
	streams map[*stream]struct{}
}

func (m *mediaLoop) add(st *stream) {
	m.mu.Lock()
	m.streams[st] = struct{}{}
	m.mu.Unlock()
}

func (m *mediaLoop) remove(st *stream) {
	m.mu.Lock()
	delete(m.streams, st)
	m.mu.Unlock()
}

func (m *mediaLoop) run(stop <-chan struct{}) {
	pkt := make([]byte, 12+160)
	for i := 12; i < len(pkt); i++ {
		pkt[i] = 0xff // PCMU silence
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var batch []*stream
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		batch = batch[:0]
		m.mu.Lock()
		for st := range m.streams {
			if st.on.Load() {
				batch = append(batch, st)
			}
		}
		m.mu.Unlock()
		for _, st := range batch {
			// Only this loop touches seq and ts.
			pkt[0], pkt[1] = 0x80, 0 // version 2, payload type 0 (PCMU)
			binary.BigEndian.PutUint16(pkt[2:], st.seq)
			binary.BigEndian.PutUint32(pkt[4:], st.ts)
			binary.BigEndian.PutUint32(pkt[8:], st.ssrc)
			st.seq++
			st.ts += 160
			if _, err := st.conn.WriteToUDP(pkt, st.peer.Load()); err == nil {
				st.sent.Add(1)
			}
		}
	}
}
