package media_test

import (
	"net"
	"net/netip"

	"github.com/pbxkit/pbxkit/media"
)

// A conference room over plain UDP sockets: each phone's packets go into its participant, and
// the room sends each phone the others' mixed audio as an RTP stream of its own.
func ExampleRoom() {
	room, err := media.NewRoom(media.RoomConfig{Name: "sales"})
	if err != nil {
		panic(err)
	}
	defer room.Close()
	join := func(conn *net.UDPConn, phone netip.AddrPort, codec media.Codec) *media.Participant {
		out := media.NewRTPStream(codec.PayloadType, func(pkt []byte) { conn.WriteToUDPAddrPort(pkt, phone) })
		p, err := room.Join(media.ParticipantConfig{Codec: codec, Send: out.Send, Name: phone.String()})
		if err != nil {
			panic(err)
		}
		go func() { // what the phone sends, until the socket closes
			buf := make([]byte, 1500)
			for {
				n, err := conn.Read(buf)
				if err != nil {
					return
				}
				p.ReceiveRTP(buf[:n])
			}
		}()
		return p
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	alice := join(conn, netip.MustParseAddrPort("127.0.0.1:40000"), media.PCMU)
	alice.SetMuted(true) // the others stop hearing Alice; she still hears them
	alice.Leave()        // the room closes with its last participant
}
