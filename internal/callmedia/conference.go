package callmedia

import (
	"errors"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/media"
)

// Conferences returns the call core's view of rooms (b2bua.Config.Conferences): a caller joins
// as a participant whose audio the call's media attachment pulls (media.Participant is a
// b2bua.MediaApp as it is).
func Conferences(rooms *media.Conferences) b2bua.Conferences { return conferences{rooms} }

type conferences struct{ rooms *media.Conferences }

var _ b2bua.ConferenceMember = (*media.Participant)(nil)

func (a conferences) Join(room string, j b2bua.ConferenceJoin) (b2bua.ConferenceMember, error) {
	codec, _ := media.G711Of(j.SDP) // for listings only: the attachment encodes
	p, err := a.rooms.Join(room, media.ParticipantConfig{Name: j.Name, Moderator: j.Moderator, Codec: codec})
	switch {
	case errors.Is(err, media.ErrRoomFull):
		return nil, &b2bua.StatusError{Code: 486, Reason: "the conference room is full"}
	case errors.Is(err, media.ErrClosed):
		return nil, &b2bua.StatusError{Code: 503, Reason: "the PBX is shutting down"}
	case err != nil:
		return nil, Error(err)
	}
	return p, nil
}
