//go:build !linux

package media

import (
	"errors"
	"net"
	"net/netip"
)

// socket is one of the relay's UDP sockets; outside Linux a net.UDPConn read by a goroutine of
// its own (loop_other.go).
type socket struct {
	c    *net.UDPConn
	port int
}

var errClosed = errors.New("media: socket closed")

// listen binds a UDP socket to ip:port.
func listen(ip net.IP, port int) (*socket, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, err
	}
	return &socket{c: c, port: port}, nil
}

// recv waits for one datagram; errClosed once the socket is closed.
func (s *socket) recv(buf []byte) (int, netip.AddrPort, error) {
	n, src, err := s.c.ReadFromUDPAddrPort(buf)
	if errors.Is(err, net.ErrClosed) {
		return 0, src, errClosed
	}
	return n, unmap(src), err
}

// send writes one datagram to dst.
func (s *socket) send(pkt []byte, dst netip.AddrPort) error {
	_, err := s.c.WriteToUDPAddrPort(pkt, dst)
	return err
}

// close closes the socket. Safe to call more than once.
func (s *socket) close() { s.c.Close() }

// localPort returns the port the socket is bound to.
func (s *socket) localPort() int { return s.port }
