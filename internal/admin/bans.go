package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// Bans of sources that failed authentication too often: list them, lift one.

// banView is a ban in force as the API shows it.
type banView struct {
	IP        string    `json:"ip"`
	Until     time.Time `json:"until"`
	NodeID    string    `json:"node_id"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) listBans(w http.ResponseWriter, r *http.Request) {
	bans, err := s.store.Bans(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	out := make([]banView, 0, len(bans))
	for _, b := range bans {
		out = append(out, banView{IP: b.IP, Until: b.Until, NodeID: b.NodeID, CreatedAt: b.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

// liftBan ends the ban of an IP on every node: 204; 404 when no ban of it is in force, 400 when
// it is not an IP address.
func (s *Server) liftBan(w http.ResponseWriter, r *http.Request) {
	ip := r.PathValue("ip")
	err := s.store.LiftBan(r.Context(), ip)
	switch {
	case errors.Is(err, store.ErrInvalid):
		writeError(w, http.StatusBadRequest, strconv.Quote(ip)+" is not an IP address")
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no ban of "+ip+" in force")
	case err != nil:
		s.storeError(w, r, err)
	default:
		s.log.Info("admin API: ban lifted", "ip", ip)
		w.WriteHeader(http.StatusNoContent)
	}
}
