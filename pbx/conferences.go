package pbx

import (
	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/internal/callmedia"
	"github.com/pbxkit/pbxkit/media"
)

// Conferences returns the PBX's conference rooms (call:conference, the admin API). Shutdown
// closes them.
func (p *PBX) Conferences() *media.Conferences { return p.conferences }

// conferenceRooms is the call core's view of the rooms, nil without a media relay: the PBX
// answers callers into a room with media of its own.
func (p *PBX) conferenceRooms() b2bua.Conferences {
	if p.relay == nil {
		return nil
	}
	return callmedia.Conferences(p.conferences)
}
