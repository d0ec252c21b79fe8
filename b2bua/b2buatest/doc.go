// Package b2buatest runs the call core on real sockets for tests: a Server (an Engine behind
// sipgo's UDP and TCP listeners on 127.0.0.1, routing every call with a function the test gives)
// and Phones (raw SIP endpoints over UDP or TCP that write requests as text and parse what comes
// back, so a test states every message of a call flow and sees every one the PBX sends).
//
// It is the seam between the call core and the PBX: package b2bua tests its call flows here,
// without registrar, authentication or store, and package pbx uses the same phones.
package b2buatest
