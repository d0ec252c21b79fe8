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

// watchConferences publishes the rooms' figures: pbxkit_conference_rooms and
// pbxkit_conference_participants.
func (p *PBX) watchConferences() {
	p.metrics.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pbxkit_conference_rooms", Help: "Conference rooms open (with at least one participant).",
		}, func() float64 { r, _ := p.conferences.Counts(); return float64(r) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pbxkit_conference_participants", Help: "Participants in conference rooms.",
		}, func() float64 { _, n := p.conferences.Counts(); return float64(n) }),
	)
}
