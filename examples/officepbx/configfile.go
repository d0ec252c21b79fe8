package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The config file is YAML, one key per long flag of serve ("sip: 0.0.0.0:5060"); a list value
// ("trust: [10.0.0.0/8, 192.168.1.0/24]") stands for the comma-separated flag value. It is read
// here rather than through ff's ffyaml because ffyaml decodes into a map and so cannot say on
// which line a bad key or value is, and because every subcommand reads the same file but takes
// from it only the settings it shares with serve (see applyConfig).

// configEntry is one key of a config file with its value and the line it is on.
type configEntry struct {
	key, value string
	line       int
}

// configFile is a parsed config file: its entries in the order they appear.
type configFile struct {
	path    string
	entries []configEntry
}

// configError is a mistake in a config file, with the line it is on (0: the whole file).
type configError struct {
	path string
	line int
	msg  string
}

func (e *configError) Error() string {
	if e.line == 0 {
		return e.path + ": " + e.msg
	}
	return fmt.Sprintf("%s:%d: %s", e.path, e.line, e.msg)
}

// readConfigFile reads and parses the config file at path.
func readConfigFile(path string) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &configError{path: path, msg: fmt.Sprintf("cannot read the config file: %v", errors.Unwrap(err))}
	}
	return parseConfig(path, data)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseConfig parses a config file's YAML: a mapping of flag names to a scalar or a list of
// scalars. An empty file (or one of comments only) sets nothing.
func parseConfig(path string, data []byte) (*configFile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &configError{path, line, "YAML syntax: " + m[2]}
		}
		return nil, &configError{path, 0, "YAML syntax: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	cf := &configFile{path: path}
	if len(doc.Content) == 0 {
		return cf, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, notAMapping(path, data, root)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, &configError{path, k.Line, "want a flag name as the key"}
		}
		if first, ok := seen[k.Value]; ok {
			return nil, &configError{path, k.Line, fmt.Sprintf("%s is set twice (first on line %d)", k.Value, first)}
		}
		seen[k.Value] = k.Line
		value, err := scalarOrList(v)
		if err != nil {
			return nil, &configError{path, v.Line, k.Value + ": " + err.Error()}
		}
		cf.entries = append(cf.entries, configEntry{key: k.Value, value: value, line: k.Line})
	}
	return cf, nil
}

// scalarOrList is a value as a flag takes it: a scalar as written ("" for none), a list joined
// with commas.
func scalarOrList(v *yaml.Node) (string, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return "", nil
		}
		return v.Value, nil
	case yaml.SequenceNode:
		items := make([]string, 0, len(v.Content))
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode {
				return "", errors.New("want a list of plain values")
			}
			items = append(items, it.Value)
		}
		return strings.Join(items, ","), nil
	}
	return "", errors.New("want a value or a list of values, not a nested mapping")
}

// notAMapping explains a file that is not a YAML mapping. The file format before YAML was
// "flag value" lines; such a file parses as one long string, and the message shows the first
// line rewritten.
func notAMapping(path string, data []byte, root *yaml.Node) error {
	first, _, _ := bytes.Cut(bytes.TrimSpace(data), []byte("\n"))
	name, value, ok := strings.Cut(strings.TrimSpace(string(first)), " ")
	if root.Kind == yaml.ScalarNode && ok && !strings.Contains(name, ":") {
		return &configError{path, root.Line, fmt.Sprintf(
			"want YAML (\"key: value\" lines, keys named as the long flags); the old \"flag value\" format is not read any more: write %q as %q",
			string(first), name+": "+strings.TrimSpace(value))}
	}
	return &configError{path, root.Line, "want YAML \"key: value\" lines, keys named as the long flags (see 'officepbx config example')"}
}
