package pbx

import (
	"net"
	"syscall"
)

// growReadBuffer asks the kernel for Config.UDPReadBuffer bytes of receive buffer on the SIP UDP
// socket and logs when it grants less.
func (p *PBX) growReadBuffer(pc net.PacketConn) {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return
	}
	if err := uc.SetReadBuffer(p.cfg.UDPReadBuffer); err != nil {
		p.log.Warn("udp receive buffer not set", "want", p.cfg.UDPReadBuffer, "error", err)
		return
	}
	if got, ok := readBuffer(uc); ok && got < p.cfg.UDPReadBuffer {
		p.log.Warn("udp receive buffer smaller than asked: raise net.core.rmem_max", "want", p.cfg.UDPReadBuffer, "got", got)
	}
}

// readBuffer returns the socket's receive buffer as the application may use it (Linux reports
// twice what it grants for data, the rest being its bookkeeping).
func readBuffer(uc *net.UDPConn) (int, bool) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, false
	}
	n, serr := 0, error(nil)
	if err := raw.Control(func(fd uintptr) { n, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF) }); err != nil || serr != nil {
		return 0, false
	}
	return n / 2, true
}
