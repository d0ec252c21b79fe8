package pbx

import "github.com/pbxkit/pbxkit/media"

// Conferences returns the PBX's conference rooms (call:conference, the admin API). Shutdown
// closes them.
func (p *PBX) Conferences() *media.Conferences { return p.conferences }
