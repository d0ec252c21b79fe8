package admin

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/pbxkit/pbxkit/media"
)

// Conference rooms (issue 14 point 4): who is in which room, mute and kick.

func (s *Server) listConferences(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.pbx.Conferences().List())
}

// participantState answers a mute or unmute.
type participantState struct {
	Room  string `json:"room"`
	ID    int    `json:"id"`
	Muted bool   `json:"muted"`
}

// muteParticipant mutes (or unmutes) a participant: the others stop (or start again) hearing it.
func (s *Server) muteParticipant(muted bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		room, id, ok := participantOf(w, r)
		if !ok {
			return
		}
		if err := s.pbx.Conferences().SetMuted(room, id, muted); err != nil {
			conferenceError(w, err)
			return
		}
		s.log.Info("admin API: conference participant muted", "room", room, "participant", id, "muted", muted)
		writeJSON(w, http.StatusOK, participantState{Room: room, ID: id, Muted: muted})
	}
}

// kickParticipant takes a participant out of its room; a caller is hung up.
func (s *Server) kickParticipant(w http.ResponseWriter, r *http.Request) {
	room, id, ok := participantOf(w, r)
	if !ok {
		return
	}
	if err := s.pbx.Conferences().Kick(room, id); err != nil {
		conferenceError(w, err)
		return
	}
	s.log.Info("admin API: conference participant kicked", "room", room, "participant", id)
	w.WriteHeader(http.StatusNoContent)
}

// participantOf reads the room and the participant's ID from the path; a malformed ID is 404
// (no participant has it).
func participantOf(w http.ResponseWriter, r *http.Request) (string, int, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id <= 0 {
		writeError(w, http.StatusNotFound, "no participant "+strconv.Quote(r.PathValue("id"))+" in the room")
		return "", 0, false
	}
	return r.PathValue("room"), id, true
}

func conferenceError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, media.ErrNoConference):
		writeError(w, http.StatusNotFound, "no conference room of that name")
	case errors.Is(err, media.ErrNoParticipant):
		writeError(w, http.StatusNotFound, "no participant with that id in the room")
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
