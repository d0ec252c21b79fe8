package pbx

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// TestDialogInfoBody: the document parses as RFC 4235 XML, in ID order, with user parts that
// would break a URI or the XML escaped.
func TestDialogInfoBody(t *testing.T) {
	body := dialogInfoBody(7, "1<0>1", "pbx.test", []dialogState{
		{ID: "b", Direction: "recipient", State: dialogEarly, Peer: "a&b"},
		{ID: "a", Direction: "initiator", State: dialogConfirmed},
	})
	var doc struct {
		XMLName xml.Name `xml:"urn:ietf:params:xml:ns:dialog-info dialog-info"`
		Version int      `xml:"version,attr"`
		State   string   `xml:"state,attr"`
		Entity  string   `xml:"entity,attr"`
		Dialogs []struct {
			ID     string `xml:"id,attr"`
			State  string `xml:"state"`
			Remote string `xml:"remote>identity"`
		} `xml:"dialog"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if doc.Version != 7 || doc.State != "full" || doc.Entity != "sip:1%3C0%3E1@pbx.test" {
		t.Fatalf("version %d state %q entity %q", doc.Version, doc.State, doc.Entity)
	}
	if len(doc.Dialogs) != 2 || doc.Dialogs[0].ID != "a" || doc.Dialogs[1].Remote != "sip:a&b@pbx.test" {
		t.Fatalf("dialogs %+v", doc.Dialogs)
	}
	if !strings.HasPrefix(string(body), "<?xml") {
		t.Fatalf("no XML declaration:\n%s", body)
	}
}

func TestSubscriptionState(t *testing.T) {
	for _, tc := range []struct{ end, want string }{
		{reasonTimeout, "terminated;reason=timeout"},
		{reasonShutdown, "terminated;reason=probation;retry-after=30"},
	} {
		if got := subscriptionState(tc.end, time.Time{}); got != tc.want {
			t.Errorf("subscriptionState(%q) = %q, want %q", tc.end, got, tc.want)
		}
	}
	if got := subscriptionState("", time.Now().Add(90*time.Second)); got != "active;expires=90" {
		t.Errorf("active: %q", got)
	}
}
