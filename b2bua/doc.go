// Package b2bua is pbxkit's call core: a back-to-back user agent. For every call it terminates the
// caller's dialog (the A-leg) and opens new dialogs toward the callee's contacts (B-legs), so the
// two sides never see each other's Call-ID, tags, Via or Contact.
//
// The PBX hands an authenticated INVITE and the targets routing chose to Engine.Connect from the
// request's handler. Connect rings every target at once (forking), relays 180/183 to the caller,
// connects the first contact that answers and cancels the others, or sends the caller the final
// answer RFC 3261 §16.7 picks when all fail (480 when nobody answers within the ring timeout,
// 503 when no contact could be reached). Redirects (3xx) from contacts are followed. Once
// answered, the call lives on: BYE from either side is mirrored to the other; re-INVITE (hold,
// resume), UPDATE, INFO and OPTIONS are passed through, with 491 for crossing re-INVITEs. The
// Engine.HandleInDialog method takes those in-dialog requests.
//
// Every call ends with one Record (a call detail record) given to the RecordWriter, and Config's
// OnEvent hears call.new, call.ringing, call.answered and call.ended.
//
// The engine works on sipgo's transactions rather than its dialog helpers: it keeps its own dialog
// table and retransmits its own 2xx until the ACK (RFC 3261 §13.3.1.4, RFC 6026), hanging up both
// sides when none comes within AckTimeout.
package b2bua
