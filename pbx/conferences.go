package pbx

import (
	"github.com/prometheus/client_golang/prometheus"

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

// watchConferences publishes the rooms' changes as events (conference.*), and their figures:
// pbxkit_conference_rooms and pbxkit_conference_participants.
func (p *PBX) watchConferences() {
	p.conferences.OnChange(func(ch media.ConferenceEvent) { p.events.publish(conferenceEvent(ch)) })
	p.metrics.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pbxkit_conference_rooms", Help: "Conference rooms open (with at least one participant).",
		}, func() float64 { r, _ := p.conferences.Counts(); return float64(r) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pbxkit_conference_participants", Help: "Participants in conference rooms.",
		}, func() float64 { _, n := p.conferences.Counts(); return float64(n) }),
	)
}

// conferenceEvent is a room's change as a PBX event.
func conferenceEvent(ch media.ConferenceEvent) Event {
	ev := Event{Kind: ch.Kind, Time: ch.Time, Room: ch.Room, Reason: ch.Why}
	if ch.Kind != media.ConferenceEnded {
		pi := ch.Participant
		ev.Participant, ev.Caller, ev.Codec, ev.Moderator = pi.ID, pi.Name, pi.Codec, pi.Moderator
	}
	return ev
}
