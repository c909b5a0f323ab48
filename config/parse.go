package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parser walks the YAML node tree itself, rather than decoding into
// structs, so that it can report every unknown key with its path instead of
// stopping at the first.
type parser struct {
	baseDir  string
	getenv   func(string) string
	problems []string
}

// problem records a problem at path. n, when not nil, is the node the
// problem is about and gives the line.
func (p *parser) problem(path string, n *yaml.Node, format string, args ...any) {
	if n != nil {
		path = fmt.Sprintf("%s (line %d)", path, n.Line)
	}
	p.problems = append(p.problems, path+": "+fmt.Sprintf(format, args...))
}

// documentRoot returns the top node of a document, or nil for an empty one.
func documentRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	return nil
}

func (p *parser) config(root *yaml.Node) *Config {
	c := &Config{Approval: Approval{Emoji: DefaultEmoji}, Prefix: DefaultPrefix}
	keys, ok := p.mapping("config", root, func(key string, k, v *yaml.Node) {
		switch key {
		case "stacks":
			c.Stacks = p.stacks(key, v)
		case "policies":
			c.Policies = p.policies(key, v)
		case "approval":
			c.Approval = p.approval(key, v)
		case "prefix":
			c.Prefix = p.prefix(key, v)
		default:
			p.problem(key, k, "unknown key")
		}
	})
	if ok && !keys["stacks"] {
		p.problem("stacks", nil, "at least one stack is required")
	}
	return c
}

// entryFunc handles one entry of a mapping: its key as a string, the key's
// node and the value's node.
type entryFunc func(key string, k, v *yaml.Node)

// mapping calls fn with every entry of the mapping n, in order, then with
// those its merge keys bring (see [parser.entries]). It reports
// keys that are not strings or that repeat, and returns the keys it saw. A
// missing or null n is an empty mapping; any other node is a problem, and
// ok is false.
func (p *parser) mapping(path string, n *yaml.Node, fn entryFunc) (keys map[string]bool, ok bool) {
	n = resolve(n)
	keys = map[string]bool{}
	if isNull(n) {
		return keys, true
	}
	if n.Kind != yaml.MappingNode {
		p.problem(path, n, "must be a mapping")
		return keys, false
	}

	p.entries(path, n, keys, map[*yaml.Node]bool{n: true}, fn)
	return keys, true
}

// entries calls fn with every entry of mapping n whose key is not in seen,
// then with those its merge keys ("<<: *defaults") bring: as in YAML 1.1, a
// key the mapping sets itself, or an earlier merged mapping brings, wins.
// Problems are reported for n's own entries only; visited holds the
// mappings walked already, so that merging one twice costs nothing.
func (p *parser) entries(path string, n *yaml.Node, seen map[string]bool, visited map[*yaml.Node]bool, fn entryFunc) {
	own := len(visited) == 1
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		switch {
		case k.Kind != yaml.ScalarNode:
			if own {
				p.problem(path, k, "keys must be strings")
			}
		case k.Tag == "!!merge":
			merged = append(merged, v)
		case path == "config" && strings.HasPrefix(k.Value, "x-"):
			// Extension fields, as in Compose files: a place for anchors.
		case seen[k.Value]:
			if own {
				p.problem(join(path, k.Value), k, "duplicate key")
			}
		default:
			seen[k.Value] = true
			fn(k.Value, k, v)
		}
	}

	for _, src := range mergeSources(merged) {
		switch {
		case src.Kind != yaml.MappingNode:
			p.problem(join(path, "<<"), src, "must merge a mapping")
		case !visited[src]:
			visited[src] = true
			p.entries(path, src, seen, visited, fn)
		}
	}
}

// mergeSources returns the mappings merge keys' values name: one each, or
// a sequence of them.
func mergeSources(values []*yaml.Node) []*yaml.Node {
	var sources []*yaml.Node
	for _, v := range values {
		if v.Kind == yaml.SequenceNode {
			for _, item := range v.Content {
				sources = append(sources, resolve(item))
			}
			continue
		}
		sources = append(sources, v)
	}
	return sources
}

// join appends key to path; the root has the path "config", which keys of
// the root leave out.
func join(path, key string) string {
	if path == "config" {
		return key
	}
	return path + "." + key
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// str returns the text of a scalar: numbers and booleans keep the text they
// were written with, and null is "". Other nodes are a problem.
func (p *parser) str(path string, n *yaml.Node) (string, bool) {
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.problem(path, n, "must be a string")
		return "", false
	}
	return n.Value, true
}

// nonEmpty is str for keys that, once given, must have a value.
func (p *parser) nonEmpty(path string, n *yaml.Node) string {
	s, ok := p.str(path, n)
	if ok && s == "" {
		p.problem(path, n, "must not be empty")
	}
	return s
}

// policies returns the absolute path of the policy directory.
func (p *parser) policies(path string, n *yaml.Node) string {
	dir, ok := p.str(path, n)
	if !ok || dir == "" {
		return ""
	}

	dir, err := p.abs(dir)
	if err != nil {
		p.problem(path, n, "%v", err)
		return ""
	}
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.problem(path, n, "directory %s does not exist", dir)
	case err != nil:
		p.problem(path, n, "directory %s: %s", dir, describe(err))
	case !info.IsDir():
		p.problem(path, n, "%s is not a directory", dir)
	}
	return dir
}

func (p *parser) approval(path string, n *yaml.Node) Approval {
	a := Approval{Emoji: DefaultEmoji}
	p.mapping(path, n, func(key string, k, v *yaml.Node) {
		at := join(path, key)
		switch key {
		case "emoji":
			a.Emoji = p.emoji(at, v)
		default:
			p.problem(at, k, "unknown key")
		}
	})
	return a
}

// emoji accepts a reaction name with or without its colons.
func (p *parser) emoji(path string, n *yaml.Node) string {
	s, ok := p.str(path, n)
	if !ok {
		return ""
	}
	name := strings.Trim(s, ":")
	if name == "" || strings.ContainsAny(name, " \t") {
		p.problem(path, n, "%q is not an emoji name", s)
	}
	return name
}

func (p *parser) prefix(path string, n *yaml.Node) string {
	if isNull(n) {
		return DefaultPrefix
	}
	return p.nonEmpty(path, n)
}

// abs resolves a path of the file against the file's directory.
func (p *parser) abs(path string) (string, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(p.baseDir, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", path, err)
	}
	return abs, nil
}

// describe says what went wrong with a file, without repeating its path.
func describe(err error) string {
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.As(err, &pathErr):
		return pathErr.Err.Error()
	default:
		return err.Error()
	}
}
