package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pbxkit/pbxkit/store"
)

// addMessage stores a message for mailbox with a WAV file of its own in dir.
func addMessage(t *testing.T, s *store.Store, dir, mailbox, caller string) *store.VoicemailMessage {
	t.Helper()
	f, err := os.CreateTemp(dir, mailbox+"-*.wav")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	m := &store.VoicemailMessage{Mailbox: mailbox, Caller: caller, CallerName: "Caller " + caller,
		CallID: "call-" + caller, Path: f.Name(), Seconds: 7}
	if err := s.AddVoicemail(context.Background(), m); err != nil {
		t.Fatalf("add voicemail for %s: %v", mailbox, err)
	}
	return m
}

func counts(t *testing.T, s *store.Store, mailbox string) store.MailboxCounts {
	t.Helper()
	c, err := s.MailboxCounts(context.Background(), mailbox)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestVoicemailMessages: messages are added, listed oldest first per mailbox and folder, counted
// new/old, moved to saved, and deleted with their WAV file.
func TestVoicemailMessages(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		dir := t.TempDir()
		mustCreate(t, s, "101")
		mustCreate(t, s, "102")
		if c := counts(t, s, "101"); c != (store.MailboxCounts{}) {
			t.Fatalf("empty mailbox counts %+v", c)
		}
		m1 := addMessage(t, s, dir, "101", "200")
		m2 := addMessage(t, s, dir, "101", "201")
		addMessage(t, s, dir, "102", "202")
		if m1.ID == 0 || m2.ID == m1.ID || m1.Folder != store.FolderNew || m1.CreatedAt.IsZero() {
			t.Fatalf("stored message not filled in: %+v %+v", m1, m2)
		}
		list, err := s.VoicemailMessages(ctx, "101", "")
		if err != nil || len(list) != 2 || list[0].ID != m1.ID || list[1].ID != m2.ID {
			t.Fatalf("list 101: %+v, %v", list, err)
		}
		if got := list[0]; got.Caller != "200" || got.CallerName != "Caller 200" || got.CallID != "call-200" ||
			got.Path != m1.Path || got.Seconds != 7 || !got.CreatedAt.Equal(m1.CreatedAt) {
			t.Fatalf("read back %+v, wrote %+v", got, *m1)
		}
		if all, err := s.VoicemailMessages(ctx, "", ""); err != nil || len(all) != 3 {
			t.Fatalf("list all: %d messages, %v", len(all), err)
		}
		if c := counts(t, s, "101"); c != (store.MailboxCounts{New: 2}) {
			t.Fatalf("counts after two messages %+v", c)
		}

		if err := s.SetVoicemailFolder(ctx, "101", m1.ID, store.FolderSaved); err != nil {
			t.Fatal(err)
		}
		if c := counts(t, s, "101"); c != (store.MailboxCounts{New: 1, Old: 1}) {
			t.Fatalf("counts after one heard %+v", c)
		}
		if news, _ := s.VoicemailMessages(ctx, "101", store.FolderNew); len(news) != 1 || news[0].ID != m2.ID {
			t.Fatalf("new folder %+v", news)
		}
		if err := s.SetVoicemailFolder(ctx, "102", m1.ID, store.FolderSaved); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("moving another mailbox's message: %v, want ErrNotFound", err)
		}
		if err := s.SetVoicemailFolder(ctx, "101", m1.ID, "trash"); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("unknown folder: %v, want ErrInvalid", err)
		}

		if _, err := s.DeleteVoicemail(ctx, "102", m1.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting another mailbox's message: %v, want ErrNotFound", err)
		}
		gone, err := s.DeleteVoicemail(ctx, "101", m1.ID)
		if err != nil || gone.Path != m1.Path {
			t.Fatalf("delete: %+v, %v", gone, err)
		}
		if _, err := os.Stat(m1.Path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("WAV file still there after delete: %v", err)
		}
		if _, err := s.Voicemail(ctx, "101", m1.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted message still readable: %v", err)
		}
		if c := counts(t, s, "101"); c != (store.MailboxCounts{New: 1}) {
			t.Fatalf("counts after delete %+v", c)
		}
		// A file already gone does not keep the row.
		os.Remove(m2.Path)
		if _, err := s.DeleteVoicemail(ctx, "101", m2.ID); err != nil {
			t.Fatalf("delete with the file gone: %v", err)
		}
	})
}

// TestVoicemailRefused: a message for no extension, without a file or with a negative length
// is refused.
func TestVoicemailRefused(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		mustCreate(t, s, "101")
		cases := []struct {
			m    store.VoicemailMessage
			want error
		}{
			{store.VoicemailMessage{Mailbox: "999", Path: "/x.wav"}, store.ErrNotFound},
			{store.VoicemailMessage{Mailbox: "101"}, store.ErrInvalid},
			{store.VoicemailMessage{Mailbox: "101", Path: "/x.wav", Seconds: -1}, store.ErrInvalid},
			{store.VoicemailMessage{Mailbox: "101", Path: "/x.wav", Folder: "old"}, store.ErrInvalid},
			{store.VoicemailMessage{Mailbox: "1 1", Path: "/x.wav"}, store.ErrInvalid},
		}
		for _, c := range cases {
			if err := s.AddVoicemail(ctx, &c.m); !errors.Is(err, c.want) {
				t.Errorf("add %+v: %v, want %v", c.m, err, c.want)
			}
		}
		if c := counts(t, s, "101"); c != (store.MailboxCounts{}) {
			t.Fatalf("refused messages counted: %+v", c)
		}
	})
}

// TestVoicemailSettings: the mailbox switch and PIN are stored; the PIN only as a salted hash
// that checks the right PIN and no other; bad PINs are refused; "" removes it.
func TestVoicemailSettings(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		mustCreate(t, s, "101")
		mustCreate(t, s, "102")
		on, pin := true, "1234"
		if _, err := s.UpdateExtension(ctx, "101", store.ExtensionPatch{Voicemail: &on, VMPIN: &pin}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateExtension(ctx, "102", store.ExtensionPatch{VMPIN: &pin}); err != nil {
			t.Fatal(err)
		}
		e, err := s.Extension(ctx, "101")
		if err != nil || !e.Voicemail || !e.HasPIN() {
			t.Fatalf("after set: %+v, %v", e, err)
		}
		if strings.Contains(e.VMPINHash, pin) || !strings.HasPrefix(e.VMPINHash, "pbkdf2-sha256$") {
			t.Fatalf("stored PIN %q is not a hash of it", e.VMPINHash)
		}
		e2, _ := s.Extension(ctx, "102")
		if e2.VMPINHash == e.VMPINHash {
			t.Fatal("the same PIN hashed alike for two mailboxes: no salt")
		}
		for _, try := range []string{"1234", "1235", "12345", "", "4321"} {
			if got := e.CheckPIN(try); got != (try == pin) {
				t.Errorf("CheckPIN(%q) = %v", try, got)
			}
		}
		for _, bad := range []string{"123", "12a4", "12345678901234567", " 1234"} {
			if _, err := s.UpdateExtension(ctx, "101", store.ExtensionPatch{VMPIN: &bad}); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("PIN %q: %v, want ErrInvalid", bad, err)
			}
		}
		if e, _ := s.Extension(ctx, "101"); !e.CheckPIN(pin) {
			t.Fatal("a refused PIN replaced the stored one")
		}
		none := ""
		if e, err = s.UpdateExtension(ctx, "101", store.ExtensionPatch{VMPIN: &none}); err != nil || e.HasPIN() || e.CheckPIN("") {
			t.Fatalf("PIN removal: %+v, %v", e, err)
		}
	})
}

// TestVoicemailWatch: watchers hear of a change made through their Store at once, and of one
// made by another process sharing the database (another Store, as the officepbx CLI is) soon
// after; a stopped watcher hears of nothing.
func TestVoicemailWatch(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		pbx := open(t, dsn)
		cli := open(t, dsn)
		mustCreate(t, pbx, "101")
		dir := t.TempDir()
		var calls atomic.Int64
		stop := pbx.WatchVoicemail(func() { calls.Add(1) })

		addMessage(t, pbx, dir, "101", "200")
		if calls.Load() == 0 {
			t.Fatal("a change through the same Store was not told at once")
		}
		before := calls.Load()
		m := addMessage(t, cli, dir, "101", "201")
		eventually(t, "the message added elsewhere", func() bool { return calls.Load() > before })
		before = calls.Load()
		if err := cli.SetVoicemailFolder(ctx, "101", m.ID, store.FolderSaved); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the message moved elsewhere", func() bool { return calls.Load() > before })

		stop()
		before = calls.Load()
		addMessage(t, pbx, dir, "101", "202") // told at once, had the watcher not stopped
		if _, err := cli.DeleteVoicemail(ctx, "101", m.ID); err != nil {
			t.Fatal(err)
		}
		// A second watcher hears of a later change: by then the deletion was seen (by a check of
		// the store, or by the second watcher's first reading, which tells everyone watching).
		var later atomic.Int64
		defer pbx.WatchVoicemail(func() { later.Add(1) })()
		addMessage(t, cli, dir, "101", "203")
		eventually(t, "the change after", func() bool { return later.Load() > 0 })
		if calls.Load() != before {
			t.Fatal("a stopped watcher was called")
		}
	})
}

// TestDeleteExtensionRemovesVoicemail: removing an extension removes its messages and their
// files, and leaves other mailboxes alone.
func TestDeleteExtensionRemovesVoicemail(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		mustCreate(t, s, "101")
		mustCreate(t, s, "102")
		dir := t.TempDir()
		m := addMessage(t, s, dir, "101", "200")
		other := addMessage(t, s, dir, "102", "200")
		if err := s.DeleteExtension(ctx, "101"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(m.Path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("message file of the removed extension still there: %v", err)
		}
		if _, err := os.Stat(filepath.Clean(other.Path)); err != nil {
			t.Fatalf("another mailbox's file removed: %v", err)
		}
		if all, _ := s.VoicemailMessages(ctx, "", ""); len(all) != 1 || all[0].Mailbox != "102" {
			t.Fatalf("messages left: %+v", all)
		}
	})
}

// TestDeleteExtensionRemovesMailboxFolder: removing an extension removes its mailbox folder
// (voicemail/NUMBER, the folder its messages are in) with the greeting in it, so a new extension
// with the number does not inherit it; other mailboxes' folders stay.
func TestDeleteExtensionRemovesMailboxFolder(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		mustCreate(t, s, "101")
		mustCreate(t, s, "102")
		root := filepath.Join(t.TempDir(), "voicemail")
		for _, n := range []string{"101", "102"} {
			os.MkdirAll(filepath.Join(root, n), 0o750)
			os.WriteFile(filepath.Join(root, n, "greeting.wav"), []byte("RIFF"), 0o600)
			addMessage(t, s, filepath.Join(root, n), n, "200")
		}
		if err := s.DeleteExtension(ctx, "101"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "101")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("mailbox folder of the removed extension: %v, want gone", err)
		}
		if _, err := os.Stat(filepath.Join(root, "102", "greeting.wav")); err != nil {
			t.Fatalf("another mailbox's greeting: %v", err)
		}
		if err := s.DeleteExtension(ctx, "101"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting it again: %v, want ErrNotFound", err)
		}
	})
}
