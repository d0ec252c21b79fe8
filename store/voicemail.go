package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"gorm.io/gorm"
)

// Voicemail folders: a message is new until its owner has heard it, then saved ("old" in the
// message-waiting counts of RFC 3842).
const (
	FolderNew   = "new"
	FolderSaved = "saved"
)

// VoicemailMessage is one message left in a mailbox: its metadata here, its audio in the WAV
// file at Path.
type VoicemailMessage struct {
	ID         int64     `gorm:"column:id;primaryKey"`
	Mailbox    string    `gorm:"column:mailbox"`     // the extension number
	Caller     string    `gorm:"column:caller"`      // the caller's user part
	CallerName string    `gorm:"column:caller_name"` // the caller's display name
	CallID     string    `gorm:"column:call_id"`     // the call that left it
	Path       string    `gorm:"column:path"`        // the WAV file
	Seconds    int       `gorm:"column:seconds"`     // length of the recording
	Folder     string    `gorm:"column:folder"`      // FolderNew or FolderSaved
	CreatedAt  time.Time `gorm:"column:created_at"`
}

// TableName tells gorm the table.
func (VoicemailMessage) TableName() string { return "voicemail_messages" }

func (m *VoicemailMessage) validate() error {
	if err := ValidateNumber(m.Mailbox); err != nil {
		return invalid("mailbox", err.Error())
	}
	if m.Folder == "" {
		m.Folder = FolderNew
	}
	if err := validateFolder(m.Folder); err != nil {
		return err
	}
	switch {
	case m.Path == "":
		return invalid("path", "must be set")
	case m.Seconds < 0:
		return invalid("seconds", "must not be negative")
	case len(m.Caller) > 256 || len(m.CallerName) > 256 || len(m.CallID) > 256:
		return invalid("caller", "caller, caller name and Call-ID must be at most 256 characters")
	}
	return nil
}

func validateFolder(f string) error {
	if f != FolderNew && f != FolderSaved {
		return invalid("folder", fmt.Sprintf("%q is neither %q nor %q", f, FolderNew, FolderSaved))
	}
	return nil
}

// MailboxCounts is what a message-waiting lamp shows: messages not heard yet (New) and heard or
// saved ones (Old).
type MailboxCounts struct {
	New, Old int
}

// AddVoicemail records a message left in mailbox m.Mailbox (an extension: ErrNotFound when there
// is none). m.ID and m.CreatedAt (when zero) are filled in; an empty folder is FolderNew.
func (s *Store) AddVoicemail(ctx context.Context, m *VoicemailMessage) error {
	if err := m.validate(); err != nil {
		return err
	}
	m.ID = 0
	if m.CreatedAt.IsZero() {
		m.CreatedAt = s.now()
	}
	m.CreatedAt = dbTime(m.CreatedAt)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Create(m).Error
	if err != nil {
		return mapErr("store: add voicemail to "+m.Mailbox, err)
	}
	s.voicemailChanged(ctx)
	return nil
}

// VoicemailMessages lists the messages of mailbox ("" for every mailbox) in folder ("" for
// both), oldest first, as a mailbox is played.
func (s *Store) VoicemailMessages(ctx context.Context, mailbox, folder string) ([]VoicemailMessage, error) {
	if folder != "" {
		if err := validateFolder(folder); err != nil {
			return nil, err
		}
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	q := s.db.WithContext(ctx).Order("mailbox").Order("created_at").Order("id")
	if mailbox != "" {
		q = q.Where("mailbox = ?", mailbox)
	}
	if folder != "" {
		q = q.Where("folder = ?", folder)
	}
	var out []VoicemailMessage
	err := q.Find(&out).Error
	return out, mapErr("store: voicemail of "+mailbox, err)
}

// Voicemail returns message id of mailbox, or ErrNotFound.
func (s *Store) Voicemail(ctx context.Context, mailbox string, id int64) (*VoicemailMessage, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var m VoicemailMessage
	err := s.db.WithContext(ctx).Where("mailbox = ? AND id = ?", mailbox, id).Take(&m).Error
	if err != nil {
		return nil, mapErr(fmt.Sprintf("store: voicemail %s/%d", mailbox, id), err)
	}
	return &m, nil
}

// SetVoicemailFolder moves message id of mailbox to folder: FolderSaved once heard or saved.
func (s *Store) SetVoicemailFolder(ctx context.Context, mailbox string, id int64, folder string) error {
	if err := validateFolder(folder); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Model(&VoicemailMessage{}).Where("mailbox = ? AND id = ?", mailbox, id).
		Update("folder", folder)
	op := fmt.Sprintf("store: voicemail %s/%d", mailbox, id)
	if res.Error != nil {
		return mapErr(op, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	s.voicemailChanged(ctx)
	return nil
}

// DeleteVoicemail removes message id of mailbox: its row, then its WAV file (a file already
// gone is not an error; one that cannot be removed is, after the row is gone). It returns the
// message as it was.
func (s *Store) DeleteVoicemail(ctx context.Context, mailbox string, id int64) (*VoicemailMessage, error) {
	op := fmt.Sprintf("store: delete voicemail %s/%d", mailbox, id)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var m VoicemailMessage
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(s.forUpdate()...).Where("mailbox = ? AND id = ?", mailbox, id).Take(&m).Error; err != nil {
			return err
		}
		return tx.Delete(&VoicemailMessage{}, m.ID).Error
	})
	if err != nil {
		return nil, mapErr(op, err)
	}
	s.voicemailChanged(ctx)
	if err := s.removeFile(m.Path); err != nil {
		return &m, fmt.Errorf("%s: %w", op, err)
	}
	return &m, nil
}

// removeFile removes a message's file. A file that is not there is no error (the row is gone,
// which is what counts) but is logged: a relative path read from another working directory
// leaves the real file behind.
func (s *Store) removeFile(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.opt.log.Warn("voicemail file to delete does not exist", "path", path)
		return nil
	}
	return err
}

// MailboxCounts counts the new and old messages of mailbox.
func (s *Store) MailboxCounts(ctx context.Context, mailbox string) (MailboxCounts, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows []struct {
		Folder string
		N      int
	}
	err := s.db.WithContext(ctx).Model(&VoicemailMessage{}).Select("folder, COUNT(*) AS n").
		Where("mailbox = ?", mailbox).Group("folder").Scan(&rows).Error
	if err != nil {
		return MailboxCounts{}, mapErr("store: mailbox "+mailbox, err)
	}
	var c MailboxCounts
	for _, r := range rows {
		switch r.Folder {
		case FolderNew:
			c.New = r.N
		case FolderSaved:
			c.Old = r.N
		}
	}
	return c, nil
}
