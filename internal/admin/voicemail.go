package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// Voicemail messages: list them, fetch their audio, mark them heard (or new again) and delete
// them. A message's audio is the WAV file at the path the PBX stored with it (absolute: under
// pbx.Config.DataDir/voicemail when it was recorded), the file the PBX plays at *97 and
// 'officepbx vm play' copies; the store deletes it with the message, and the mailbox's
// message-waiting lamps follow every change through the store (Store.WatchVoicemail).

// voicemailView is a message as the API shows it: its audio is at AudioURL (same token).
type voicemailView struct {
	ID          int64     `json:"id"`
	Mailbox     string    `json:"mailbox"`
	Caller      string    `json:"caller"`
	CallerName  string    `json:"caller_name,omitempty"`
	Folder      string    `json:"folder"`
	DurationSec int       `json:"duration_sec"`
	CreatedAt   time.Time `json:"created_at"`
	AudioURL    string    `json:"audio_url"`
}

func viewVoicemail(m store.VoicemailMessage) voicemailView {
	return voicemailView{ID: m.ID, Mailbox: m.Mailbox, Caller: m.Caller, CallerName: m.CallerName, Folder: m.Folder,
		DurationSec: m.Seconds, CreatedAt: m.CreatedAt, AudioURL: voicemailPath(m.Mailbox, m.ID) + "/audio"}
}

// voicemailPath is a message's resource.
func voicemailPath(mailbox string, id int64) string {
	return "/api/voicemail/" + url.PathEscape(mailbox) + "/" + strconv.FormatInt(id, 10)
}

// validFolder reports whether f is a folder the store keeps messages in.
func validFolder(f string) bool {
	return f == store.FolderNew || f == store.FolderSaved
}

var folderHint = fmt.Sprintf("want %q (not heard yet) or %q (heard)", store.FolderNew, store.FolderSaved)

// listVoicemail lists messages, oldest first by mailbox: of one mailbox (?mailbox=, 404 when no
// extension has that number) or of all, in one folder (?folder=, 400 when not a folder) or both.
func (s *Server) listVoicemail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mailbox, folder := q.Get("mailbox"), q.Get("folder")
	if folder != "" && !validFolder(folder) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("folder %q: %s", folder, folderHint))
		return
	}
	if mailbox != "" {
		if _, err := s.store.Extension(r.Context(), mailbox); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				writeError(w, http.StatusNotFound, "no extension "+strconv.Quote(mailbox))
				return
			}
			s.storeError(w, r, err)
			return
		}
	}
	msgs, err := s.store.VoicemailMessages(r.Context(), mailbox, folder)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	out := make([]voicemailView, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, viewVoicemail(m))
	}
	writeJSON(w, http.StatusOK, out)
}

// messageOf reads the message's mailbox and ID from the path; a malformed ID is 404 (no message
// has it).
func messageOf(w http.ResponseWriter, r *http.Request) (string, int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusNotFound, "no message "+strconv.Quote(r.PathValue("id"))+" in the mailbox")
		return "", 0, false
	}
	return r.PathValue("mailbox"), id, true
}

// openInside opens path, which must lie inside dir once symbolic links are followed: a path
// stored elsewhere is taken for a missing file.
func openInside(dir, path string) (*os.File, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(root, real); err != nil || !filepath.IsLocal(rel) {
		return nil, fs.ErrNotExist
	}
	return os.Open(real)
}

// voicemailAudio serves a message's WAV file, with ranges (browsers seek with them); 404 when
// there is no such message or its file is missing (e.g. recorded on another node, or removed by
// hand).
func (s *Server) voicemailAudio(w http.ResponseWriter, r *http.Request) {
	mailbox, id, ok := messageOf(w, r)
	if !ok {
		return
	}
	m, err := s.store.Voicemail(r.Context(), mailbox, id)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	f, err := openInside(s.cfg.PBX.VoicemailDir(), m.Path)
	var st os.FileInfo
	if err == nil {
		defer f.Close()
		st, err = f.Stat()
		if err == nil && !st.Mode().IsRegular() {
			err = fs.ErrNotExist
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("admin API: voicemail file missing", "ext", mailbox, "id", id, "path", m.Path)
			writeError(w, http.StatusNotFound, "the message's audio file is missing")
			return
		}
		s.log.Error("admin API: voicemail file", "ext", mailbox, "id", id, "path", m.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "the message's audio file cannot be read")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "audio/wav")
	h.Set("Content-Disposition", fmt.Sprintf(`inline; filename="voicemail-%s-%d.wav"`, url.PathEscape(mailbox), id))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// voicemailPatch is the body of PATCH /api/voicemail/{mailbox}/{id}.
type voicemailPatch struct {
	Folder *string `json:"folder"`
}

// patchVoicemail moves a message to another folder ("saved": heard; "new": not heard again);
// 200 with the message, 404 for no such message, 422 for a folder the store does not keep.
func (s *Server) patchVoicemail(w http.ResponseWriter, r *http.Request) {
	mailbox, id, ok := messageOf(w, r)
	if !ok {
		return
	}
	var in voicemailPatch
	if !s.decode(w, r, &in, false) {
		return
	}
	if in.Folder == nil {
		writeError(w, http.StatusUnprocessableEntity, "folder is required: "+folderHint)
		return
	}
	if !validFolder(*in.Folder) {
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("folder %q: %s", *in.Folder, folderHint))
		return
	}
	if err := s.store.SetVoicemailFolder(r.Context(), mailbox, id, *in.Folder); err != nil {
		s.storeError(w, r, err)
		return
	}
	m, err := s.store.Voicemail(r.Context(), mailbox, id)
	if err != nil {
		s.storeError(w, r, err) // deleted meanwhile: 404
		return
	}
	s.log.Info("admin API: voicemail moved", "ext", mailbox, "id", id, "folder", m.Folder)
	writeJSON(w, http.StatusOK, viewVoicemail(*m))
}

// deleteVoicemail deletes a message and its WAV file: 204, or 404 for no such message. A file
// that cannot be removed (the message itself is gone) is 500 saying so.
func (s *Server) deleteVoicemail(w http.ResponseWriter, r *http.Request) {
	mailbox, id, ok := messageOf(w, r)
	if !ok {
		return
	}
	m, err := s.store.DeleteVoicemail(r.Context(), mailbox, id)
	if err != nil && m != nil {
		s.log.Error("admin API: voicemail deleted, its file left behind", "ext", mailbox, "id", id, "path", m.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "the message was deleted but its audio file could not be removed: "+err.Error())
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	s.log.Info("admin API: voicemail deleted", "ext", mailbox, "id", id)
	w.WriteHeader(http.StatusNoContent)
}
