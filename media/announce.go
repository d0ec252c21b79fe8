package media

import "time"

// WithAnnouncement plays music over and over and, every interval of music, the announcement
// once in its place, from its start; the music then goes on where it stopped. It is one stream
// (one SSRC, sequence numbers and timestamps running on), as a queue's caller hears hold music
// with "all our agents are busy" now and then. announcement must come from LoadWAV (it is
// rewound for each turn); interval is rounded to whole 20 ms frames, at least one.
func WithAnnouncement(music Source, announcement Source, interval time.Duration) Source {
	return &announced{music: music, ann: announcement, every: max(1, int(interval/framePeriod))}
}

type announced struct {
	music, ann Source
	every      int  // frames of music between announcements
	n          int  // frames of music since the last announcement
	speaking   bool // the announcement is playing
}

func (a *announced) Frame(dst []byte) bool {
	if !a.speaking && a.n >= a.every {
		if c, ok := a.ann.(*clip); ok {
			c.pos = 0
		}
		a.speaking, a.n = true, 0
	}
	if a.speaking {
		if a.ann.Frame(dst) {
			return true
		}
		a.speaking = false
	}
	a.n++
	return a.music.Frame(dst)
}
