package pbx

import (
	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/internal/callmedia"
)

// mediaRelay is the call core's view of the media relay (internal/callmedia), or nil without one.
func (p *PBX) mediaRelay() b2bua.Media {
	if p.relay == nil {
		return nil
	}
	return callmedia.New(p.relay)
}

// MediaPorts returns how many RTP port pairs of the relay are free and in use (0, 0 without a
// relay).
func (p *PBX) MediaPorts() (free, inUse int) {
	if p.relay == nil {
		return 0, 0
	}
	return p.relay.Ports().Free(), p.relay.Ports().InUse()
}
