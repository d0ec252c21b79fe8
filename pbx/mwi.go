package pbx

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// Message-waiting lamps (RFC 3842 over RFC 6665): a phone subscribes to its own mailbox with
// Event: message-summary and is told, at once and after every change, whether new messages wait
// and how many. The subscriptions are those of busy lamps (subscribe.go, subscription.go): the
// same dialogs, expiry, refresh, limits and shutdown; only the body differs, and it comes from
// the store instead of the call core.

// EventPackageMessageSummary is the message-waiting event package (RFC 3842).
const EventPackageMessageSummary = "message-summary"

// ContentTypeMessageSummary is the media type of message-summary bodies (RFC 3842 §5).
const ContentTypeMessageSummary = "application/simple-message-summary"

// MessageSummaryExpires is what a message-summary SUBSCRIBE without Expires gets (RFC 3842 §4.2
// leaves it to the notifier; one hour, as for dialogs), at most SubscriptionMaxExpires.
const MessageSummaryExpires = 3600 * time.Second

// mwiQueryWait bounds the count query behind one NOTIFY.
const mwiQueryWait = 3 * time.Second

// Mailboxes is what message-waiting lamps need from the store: a mailbox's counts, and word of
// changes (made by this process or another sharing the database). *store.Store implements it; a
// Store without it serves no message-summary subscriptions (489).
type Mailboxes interface {
	MailboxCounts(ctx context.Context, mailbox string) (store.MailboxCounts, error)
	WatchVoicemail(f func()) (stop func())
}

var _ Mailboxes = (*store.Store)(nil)

// messageSummaryBody is the body of RFC 3842 §5.2 for a mailbox: Messages-Waiting says whether
// new messages wait; Voice-Message gives new/old counts, then the urgent ones (none: pbxkit has no
// urgent messages).
//
//	Messages-Waiting: yes
//	Message-Account: sip:101@pbx.example
//	Voice-Message: 2/8 (0/0)
func messageSummaryBody(c store.MailboxCounts, account string) []byte {
	var b bytes.Buffer
	waiting := "no"
	if c.New > 0 {
		waiting = "yes"
	}
	fmt.Fprintf(&b, "Messages-Waiting: %s\r\n", waiting)
	fmt.Fprintf(&b, "Message-Account: %s\r\n", account)
	fmt.Fprintf(&b, "Voice-Message: %d/%d (0/0)\r\n", c.New, c.Old)
	return b.Bytes()
}

// mailboxChanged wakes every message-summary subscription: the store says some mailbox changed,
// not which one. Each re-reads its counts and sends a NOTIFY only when they moved.
func (pr *presence) mailboxChanged() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for _, s := range pr.subs {
		if s.pkg == EventPackageMessageSummary {
			s.signal()
		}
	}
}

// summary returns the message-summary body of s's mailbox. A store that does not answer keeps
// the last body (an empty mailbox's before the first): a lamp is not switched off for an outage.
func (s *subscription) summary() []byte {
	ctx, cancel := context.WithTimeout(context.Background(), mwiQueryWait)
	defer cancel()
	c, err := s.pr.mailboxes.MailboxCounts(ctx, s.ext)
	if err != nil {
		s.log.Warn("mailbox counts unavailable", "ext", s.ext, "error", err)
		if s.lastBody != nil {
			return s.lastBody
		}
	}
	return messageSummaryBody(c, fmt.Sprintf("sip:%s@%s", s.ext, s.pr.cfg.Domain))
}
