//go:build linux

package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// socket is one of the relay's UDP sockets. On Linux it is a plain non-blocking file descriptor
// that Go's network poller never sees: the relay's event loops (loop_linux.go) wait on it with
// an epoll set of their own. Registered with the runtime poller as well, every datagram would
// also wake the runtime's poller thread for nothing.
type socket struct {
	mu   sync.RWMutex // read-held while the descriptor is used, held by close
	fd   int          // -1 once closed
	ip6  bool
	port int
}

var errClosed = errors.New("media: socket closed")

// listen binds a non-blocking UDP socket to ip:port.
func listen(ip net.IP, port int) (*socket, error) {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return nil, errors.New("media: invalid address " + ip.String())
	}
	addr = addr.Unmap()
	var family int
	var sa unix.Sockaddr
	if addr.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
	} else {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	if addr.Is6() && addr.IsUnspecified() {
		// "::" takes IPv4 peers too (as v4-mapped addresses).
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &socket{fd: fd, ip6: addr.Is6(), port: port}, nil
}

// recv reads one datagram without waiting (EAGAIN when none is there).
func (s *socket) recv(buf []byte) (int, netip.AddrPort, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return 0, netip.AddrPort{}, errClosed
	}
	var rsa unix.RawSockaddrInet6 // large enough for either family
	rsaLen := uint32(unsafe.Sizeof(rsa))
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), uintptr(unsafe.Pointer(unsafe.SliceData(buf))),
		uintptr(len(buf)), unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&rsaLen)))
	if errno != 0 {
		return 0, netip.AddrPort{}, errno
	}
	return int(n), fromRaw(&rsa), nil
}

// fromRaw converts the source address recvfrom filled in.
func fromRaw(rsa *unix.RawSockaddrInet6) netip.AddrPort {
	port := ntohs(rsa.Port)
	if rsa.Family == unix.AF_INET {
		in4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(rsa.Addr).Unmap(), port)
}

// send writes one datagram to dst without waiting; a full send buffer drops it, as a router would.
func (s *socket) send(pkt []byte, dst netip.AddrPort) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return errClosed
	}
	var ptr unsafe.Pointer
	var size uintptr
	var in4 unix.RawSockaddrInet4
	var in6 unix.RawSockaddrInet6
	port := dst.Port()
	if !s.ip6 {
		if !dst.Addr().Unmap().Is4() {
			return errors.New("media: an IPv6 destination for an IPv4 socket")
		}
		in4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(port), Addr: dst.Addr().Unmap().As4()}
		ptr, size = unsafe.Pointer(&in4), unsafe.Sizeof(in4)
	} else {
		in6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(port), Addr: dst.Addr().As16()}
		ptr, size = unsafe.Pointer(&in6), unsafe.Sizeof(in6)
	}
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(unsafe.Pointer(unsafe.SliceData(pkt))),
		uintptr(len(pkt)), unix.MSG_DONTWAIT, uintptr(ptr), size)
	if errno != 0 {
		return errno
	}
	return nil
}

// close closes the descriptor once no recv or send uses it. Safe to call more than once.
func (s *socket) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// localPort returns the port the socket is bound to.
func (s *socket) localPort() int { return s.port }

// ntohs reads a port the kernel stored in network byte order, whatever the host's order.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// htons stores a port in network byte order, whatever the host's order.
func htons(p uint16) (n uint16) {
	b := (*[2]byte)(unsafe.Pointer(&n))
	b[0], b[1] = byte(p>>8), byte(p)
	return n
}
