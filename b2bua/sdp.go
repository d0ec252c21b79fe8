package b2bua

import (
	"bytes"
)

// sendRecv returns a session description with every direction attribute (a=sendonly,
// a=recvonly, a=inactive) made a=sendrecv. A transfer offers one party's latest description to a
// new one; when the transferor had put that party on hold, the description says so, and offered
// as it is it would keep the new pair on hold (RFC 3264 §8.4). The rest is left untouched.
func sendRecv(sdp []byte) []byte {
	if len(sdp) == 0 {
		return sdp
	}
	var out bytes.Buffer
	for line := range bytes.Lines(sdp) {
		body := bytes.TrimRight(line, "\r\n")
		switch string(body) {
		case "a=sendonly", "a=recvonly", "a=inactive":
			out.WriteString("a=sendrecv")
			out.Write(line[len(body):])
		default:
			out.Write(line)
		}
	}
	return out.Bytes()
}

// inactive returns a session description with its streams made a=inactive: the description of a
// side that has left the call (a parker), so that the media relay expects nothing from it.
func inactive(sdp []byte) []byte {
	if len(sdp) == 0 {
		return sdp
	}
	var out bytes.Buffer
	for line := range bytes.Lines(sdp) {
		body := bytes.TrimRight(line, "\r\n")
		switch string(body) {
		case "a=sendonly", "a=recvonly", "a=inactive", "a=sendrecv":
			continue
		}
		out.Write(line)
		if bytes.HasPrefix(body, []byte("m=")) {
			out.WriteString("a=inactive\r\n")
		}
	}
	return out.Bytes()
}
