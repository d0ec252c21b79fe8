package sipx

// IsToken reports whether s is a token of RFC 3261 §25.1: one or more of
//
//	alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
//
// Header names, method names, option tags and parameter names are tokens; a value that is not one
// would break the message it is written into.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '-', '.', '!', '%', '*', '_', '+', '`', '\'', '~':
		return true
	}
	return false
}
