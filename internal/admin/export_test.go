package admin

// Endpoints lists the routes as method and path, for the OpenAPI test.
func Endpoints() [][2]string {
	var out [][2]string
	for _, e := range (&Server{}).endpoints() {
		out = append(out, [2]string{e.method, e.path})
	}
	return out
}
