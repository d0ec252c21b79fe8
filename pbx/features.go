package pbx

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/store"
)

// Feature codes and call park (Config.Features). The zero value of every field means its default;
// Off turns a code off.
type Features struct {
	// DirectedPickup is the prefix of directed pickup: the prefix and an extension number answers
	// the call ringing at that extension. Default "**".
	DirectedPickup string
	// GroupPickup answers the call ringing longest at an extension of the caller's pickup group
	// (the extensions with the same pickup_group). Default "*8".
	GroupPickup string
	// ParkNumber is the number a blind transfer (REFER) parks the transferee at; it then waits in
	// the first free of ParkSlots slots, numbered from ParkNumber+1 ("701" to "709"), until
	// someone dials the slot or ParkTimeout passes (its parker is then rung back, and the parked
	// party hung up if the parker does not answer). Default "700"; digits only.
	ParkNumber string
	// ParkSlots is how many park slots follow ParkNumber. Default 9; at most 100.
	ParkSlots int
	// ParkTimeout is how long a call stays parked before its parker is rung back. Default 60 s.
	ParkTimeout time.Duration
	// ParkMusic is what a parked party hears with the media relay on: "tone" (a soft beep every
	// three seconds, the default) or an 8 kHz WAV file.
	ParkMusic string
	// VoicemailMain is the caller's own mailbox: its PIN, then its messages. Default "*97".
	VoicemailMain string
	// VoicemailAny is any mailbox: its number, its PIN, then its messages. Default "*98".
	VoicemailAny string
}

// Off turns a feature code of Features off (a code or ParkNumber).
const Off = "off"

// Defaults of Features.
const (
	DefaultDirectedPickup = dialplan.DefaultDirectedPickup
	DefaultGroupPickup    = dialplan.DefaultGroupPickup
	DefaultParkNumber     = "700"
	DefaultParkSlots      = 9
	DefaultParkTimeout    = b2bua.DefaultParkTimeout
	DefaultVoicemailMain  = "*97"
	DefaultVoicemailAny   = "*98"
)

func (f Features) withDefaults() Features {
	if f.DirectedPickup == "" {
		f.DirectedPickup = DefaultDirectedPickup
	}
	if f.GroupPickup == "" {
		f.GroupPickup = DefaultGroupPickup
	}
	if f.ParkNumber == "" {
		f.ParkNumber = DefaultParkNumber
	}
	if f.ParkSlots == 0 {
		f.ParkSlots = DefaultParkSlots
	}
	if f.ParkTimeout == 0 {
		f.ParkTimeout = DefaultParkTimeout
	}
	if f.VoicemailMain == "" {
		f.VoicemailMain = DefaultVoicemailMain
	}
	if f.VoicemailAny == "" {
		f.VoicemailAny = DefaultVoicemailAny
	}
	return f
}

func (c Config) validateFeatures() []error {
	var errs []error
	f := c.Features
	if n, err := strconv.Atoi(f.ParkNumber); f.ParkNumber != Off && (err != nil || n < 0 || f.ParkNumber[0] == '+') {
		errs = append(errs, invalid("Features.ParkNumber", fmt.Sprintf("%q", f.ParkNumber), "want digits, e.g. 700, or "+Off))
	}
	if f.ParkSlots < 1 || f.ParkSlots > 100 {
		errs = append(errs, invalid("Features.ParkSlots", fmt.Sprint(f.ParkSlots), "want 1 to 100"))
	}
	errs = appendNegative(errs, "Features.ParkTimeout", f.ParkTimeout)
	return errs
}

// on returns code, or "" when it is Off.
func on(code string) string {
	if code == Off {
		return ""
	}
	return code
}

// dialplanFeatures are the codes default routing answers.
func (f Features) dialplanFeatures() dialplan.Features {
	return dialplan.Features{DirectedPickup: on(f.DirectedPickup), GroupPickup: on(f.GroupPickup)}
}

// park is the call engine's park configuration: slots ParkNumber+1 onwards, with as many digits.
func (f Features) park() b2bua.ParkConfig {
	number := on(f.ParkNumber)
	base, err := strconv.Atoi(number)
	if number == "" || err != nil {
		return b2bua.ParkConfig{}
	}
	slots := make([]string, f.ParkSlots)
	for i := range slots {
		slots[i] = fmt.Sprintf("%0*d", len(number), base+1+i)
	}
	return b2bua.ParkConfig{Number: number, Slots: slots, Timeout: f.ParkTimeout, Music: f.ParkMusic}
}

// PickupGroup returns the extensions in ext's pickup group, for group pickup.
func (d directory) PickupGroup(ctx context.Context, ext string) ([]string, error) {
	e, err := d.p.store.Extension(ctx, ext)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pg, ok := d.p.store.(interface {
		PickupGroup(ctx context.Context, group string) ([]string, error)
	})
	if !ok || e.PickupGroup == "" {
		return nil, nil
	}
	return pg.PickupGroup(ctx, e.PickupGroup)
}

var _ dialplan.PickupGroups = directory{}
