package admin

import (
	"net/http"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// extensionView is an extension as the API shows it: never its credentials.
type extensionView struct {
	Number          string    `json:"number"`
	Name            string    `json:"name"`
	Enabled         bool      `json:"enabled"`
	DND             bool      `json:"dnd"`
	ForwardAlways   string    `json:"forward_always"`
	ForwardBusy     string    `json:"forward_busy"`
	ForwardNoAnswer string    `json:"forward_noanswer"`
	RingTimeout     int       `json:"ring_timeout"`
	PickupGroup     string    `json:"pickup_group"`
	Voicemail       bool      `json:"voicemail"`
	VMPINSet        bool      `json:"vm_pin_set"` // the PIN itself is write-only
	Record          bool      `json:"record"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

func viewExtension(e store.Extension) extensionView {
	return extensionView{Number: e.Number, Name: e.Name, Enabled: e.Enabled, DND: e.DND,
		ForwardAlways: e.ForwardAlways, ForwardBusy: e.ForwardBusy, ForwardNoAnswer: e.ForwardNoAnswer,
		RingTimeout: e.RingTimeout, PickupGroup: e.PickupGroup, Voicemail: e.Voicemail, VMPINSet: e.HasPIN(), Record: e.Record, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

// extensionInput is the body of POST and PATCH: every field optional in a PATCH; number and
// password required in a POST. The password is write-only.
type extensionInput struct {
	Number          *string `json:"number"`
	Password        *string `json:"password"`
	Name            *string `json:"name"`
	Enabled         *bool   `json:"enabled"`
	DND             *bool   `json:"dnd"`
	ForwardAlways   *string `json:"forward_always"`
	ForwardBusy     *string `json:"forward_busy"`
	ForwardNoAnswer *string `json:"forward_noanswer"`
	RingTimeout     *int    `json:"ring_timeout"`
	PickupGroup     *string `json:"pickup_group"`
	Voicemail       *bool   `json:"voicemail"`
	VMPIN           *string `json:"vm_pin"` // write-only, like the password
	Record          *bool   `json:"record"`
}

func (in extensionInput) patch() store.ExtensionPatch {
	return store.ExtensionPatch{Name: in.Name, Password: in.Password, Enabled: in.Enabled, DND: in.DND,
		ForwardAlways: in.ForwardAlways, ForwardBusy: in.ForwardBusy, ForwardNoAnswer: in.ForwardNoAnswer,
		RingTimeout: in.RingTimeout, PickupGroup: in.PickupGroup, Voicemail: in.Voicemail, VMPIN: in.VMPIN, Record: in.Record}
}

// checkPassword refuses passwords that a scanner guesses first.
func checkPassword(number, pw string) string {
	switch {
	case len(pw) < 6:
		return "password must be at least 6 characters"
	case pw == number:
		return "password must not be the extension number"
	}
	return ""
}

func (s *Server) listExtensions(w http.ResponseWriter, r *http.Request) {
	exts, err := s.store.Extensions(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	out := make([]extensionView, 0, len(exts))
	for _, e := range exts {
		out = append(out, viewExtension(e))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getExtension(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.Extension(r.Context(), r.PathValue("number"))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewExtension(*e))
}

func (s *Server) createExtension(w http.ResponseWriter, r *http.Request) {
	var in extensionInput
	if !s.decode(w, r, &in, false) {
		return
	}
	if in.Number == nil || in.Password == nil {
		writeError(w, http.StatusUnprocessableEntity, "number and password are required")
		return
	}
	if msg := checkPassword(*in.Number, *in.Password); msg != "" {
		writeError(w, http.StatusUnprocessableEntity, msg)
		return
	}
	e := &store.Extension{Number: *in.Number, Enabled: true, Realm: s.pbx.Config().Domain}
	if err := in.patch().Apply(e); err != nil { // the password is hashed for the PBX's domain
		s.storeError(w, r, err)
		return
	}
	if err := s.store.CreateExtension(r.Context(), e); err != nil {
		s.storeError(w, r, err)
		return
	}
	s.log.Info("admin API: extension created", "ext", e.Number)
	w.Header().Set("Location", "/api/extensions/"+e.Number)
	writeJSON(w, http.StatusCreated, viewExtension(*e))
}

func (s *Server) patchExtension(w http.ResponseWriter, r *http.Request) {
	number := r.PathValue("number")
	var in extensionInput
	if !s.decode(w, r, &in, false) {
		return
	}
	if in.Number != nil && *in.Number != number {
		writeError(w, http.StatusUnprocessableEntity, "the number cannot be changed; add a new extension")
		return
	}
	if in.Password != nil {
		if msg := checkPassword(number, *in.Password); msg != "" {
			writeError(w, http.StatusUnprocessableEntity, msg)
			return
		}
	}
	e, err := s.store.UpdateExtension(r.Context(), number, in.patch())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	s.log.Info("admin API: extension changed", "ext", number, "password", in.Password != nil, "vm_pin", in.VMPIN != nil)
	writeJSON(w, http.StatusOK, viewExtension(*e))
}

func (s *Server) deleteExtension(w http.ResponseWriter, r *http.Request) {
	number := r.PathValue("number")
	if err := s.store.DeleteExtension(r.Context(), number); err != nil {
		s.storeError(w, r, err)
		return
	}
	s.log.Info("admin API: extension removed", "ext", number)
	w.WriteHeader(http.StatusNoContent)
}
