package config

import (
	"fmt"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/taskbot/taskbot"
	"go.yaml.in/yaml/v3"
)

var (
	writerID = regexp.MustCompile(`^[UWS][A-Z0-9]{2,}$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// stacks parses the stacks mapping. Stacks with problems are kept, so that
// the problems of all of them are reported.
func (p *parser) stacks(path string, n *yaml.Node) map[string]*taskbot.Stack {
	stacks := map[string]*taskbot.Stack{}
	folded := map[string]string{} // lower-case name → name
	keys, ok := p.mapping(path, n, func(name string, k, v *yaml.Node) {
		at := join(path, name)
		p.stackName(at, k)
		if other, dup := folded[strings.ToLower(name)]; dup {
			p.problem(at, k, "differs from stack %q only in case; people would mistake one for the other", other)
		}
		folded[strings.ToLower(name)] = name
		stacks[name] = p.stack(at, name, v)
	})
	if ok && len(keys) == 0 {
		p.problem(path, n, "at least one stack is required")
	}
	return stacks
}

func (p *parser) stackName(path string, k *yaml.Node) {
	for _, r := range Reserved {
		if strings.EqualFold(k.Value, r) {
			p.problem(path, k, "name collides with the subcommand %q", r)
			return
		}
	}
	if !taskbot.ValidStackName(k.Value) {
		p.problem(path, k, "invalid stack name (use %s)", taskbot.StackNameRule)
	}
}

func (p *parser) stack(path, name string, n *yaml.Node) *taskbot.Stack {
	s := &taskbot.Stack{Name: name, Timeout: DefaultTimeout}
	keys, ok := p.mapping(path, n, func(key string, k, v *yaml.Node) {
		at := join(path, key)
		switch key {
		case "image":
			s.Image = p.nonEmpty(at, v)
		case "init":
			s.Init, _ = p.str(at, v)
		case "workdir":
			s.Workdir = p.workdir(at, v)
		case "writers":
			s.Writers = p.writers(at, v)
		case "labels":
			s.Labels = p.stringMap(at, v, false)
		case "env":
			s.Env = p.stringMap(at, v, true)
		case "secrets":
			s.Secrets = p.secrets(at, v)
		case "timeout":
			s.Timeout = p.timeout(at, v)
		default:
			p.problem(at, k, "unknown key")
		}
	})
	if !ok {
		return s
	}

	for _, key := range []string{"image", "writers"} {
		if !keys[key] {
			p.problem(join(path, key), nil, "required")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Secrets)) {
		if _, ok := s.Env[name]; ok {
			p.problem(join(path, "secrets."+name), nil, "also set in env; keep one")
		}
	}
	return s
}

// workdir accepts an absolute path inside the container, which is a Unix
// path whatever the host is.
func (p *parser) workdir(at string, n *yaml.Node) string {
	dir, ok := p.str(at, n)
	if ok && dir != "" && !path.IsAbs(dir) {
		p.problem(at, n, "%q is not an absolute path", dir)
	}
	return dir
}

func (p *parser) writers(path string, n *yaml.Node) []string {
	if isNull(n) {
		p.problem(path, n, "at least one writer is required")
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.problem(path, n, "must be a list of Slack user and user-group IDs")
		return nil
	}
	if len(n.Content) == 0 {
		p.problem(path, n, "at least one writer is required")
	}

	var writers []string
	for i, item := range n.Content {
		at := fmt.Sprintf("%s[%d]", path, i)
		id, ok := p.str(at, resolve(item))
		if !ok {
			continue
		}
		if !writerID.MatchString(id) {
			p.problem(at, item, "%q is not a Slack user or user-group ID (U…, W… or S…)", id)
			continue
		}
		writers = append(writers, id)
	}
	return writers
}

// reservedEnvPrefix starts the names of the variables taskbot uses to carry
// a task's init and command into its container.
const reservedEnvPrefix = "TASKBOT_"

// envVar reports whether name may name a variable set in a stack's
// containers, recording a problem at path if not.
func (p *parser) envVar(path string, k *yaml.Node, name string) bool {
	switch {
	case !envName.MatchString(name):
		p.problem(path, k, "invalid environment variable name")
	case strings.HasPrefix(name, reservedEnvPrefix):
		p.problem(path, k, "names starting with %s are taskbot's own", reservedEnvPrefix)
	default:
		return true
	}
	return false
}

// stringMap parses a mapping of strings whose keys, if envNames, must be
// names of environment variables a stack may set.
func (p *parser) stringMap(path string, n *yaml.Node, envNames bool) map[string]string {
	m := map[string]string{}
	p.mapping(path, n, func(key string, k, v *yaml.Node) {
		at := join(path, key)
		if envNames && !p.envVar(at, k, key) {
			return
		}
		if s, ok := p.str(at, v); ok {
			m[key] = s
		}
	})
	return m
}

func (p *parser) timeout(path string, n *yaml.Node) time.Duration {
	s, ok := p.str(path, n)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.problem(path, n, "invalid duration %q", s)
	case d <= 0:
		p.problem(path, n, "must be positive")
	}
	return d
}

// secrets parses and resolves the secrets of a stack.
func (p *parser) secrets(path string, n *yaml.Node) map[string]taskbot.Secret {
	secrets := map[string]taskbot.Secret{}
	p.mapping(path, n, func(name string, k, v *yaml.Node) {
		at := join(path, name)
		if !p.envVar(at, k, name) {
			return
		}
		if s, ok := p.secret(at, v); ok {
			secrets[name] = s
		}
	})
	return secrets
}

// secret resolves one secret from exactly one of its sources. Problems
// name the source, never the value.
func (p *parser) secret(path string, n *yaml.Node) (taskbot.Secret, bool) {
	var env, file string
	keys, ok := p.mapping(path, n, func(key string, k, v *yaml.Node) {
		at := join(path, key)
		switch key {
		case "env":
			env = p.nonEmpty(at, v)
		case "file":
			file = p.nonEmpty(at, v)
		default:
			p.problem(at, k, "unknown key")
		}
	})
	switch {
	case !ok:
		return "", false
	case keys["env"] == keys["file"]:
		p.problem(path, n, "set exactly one of env or file")
		return "", false
	case env == "" && file == "":
		return "", false
	}

	var value taskbot.Secret
	switch {
	case env != "":
		value, ok = p.secretFromEnv(path, n, env)
	case file != "":
		value, ok = p.secretFromFile(path, n, file)
	}
	if ok && visibleLength(value.Reveal()) < MinSecretLength {
		p.problem(path, n, "the secret is shorter than %d characters, white space aside: "+
			"masking it would garble output, and it is too weak to be a secret", MinSecretLength)
		return "", false
	}
	return value, ok
}

func (p *parser) secretFromEnv(path string, n *yaml.Node, name string) (taskbot.Secret, bool) {
	if !envName.MatchString(name) {
		p.problem(path, n, "%q is not an environment variable name", name)
		return "", false
	}
	value := p.getenv(name)
	if value == "" {
		p.problem(path, n, "environment variable %s is not set", name)
		return "", false
	}
	return taskbot.Secret(value), true
}

// secretFromFile reads a secret file, dropping the one trailing newline
// that editors and `echo` add.
func (p *parser) secretFromFile(path string, n *yaml.Node, file string) (taskbot.Secret, bool) {
	file, err := p.abs(file)
	if err != nil {
		p.problem(path, n, "%v", err)
		return "", false
	}
	data, err := os.ReadFile(file)
	if err != nil {
		p.problem(path, n, "file %s: %s", file, describe(err))
		return "", false
	}

	value, found := strings.CutSuffix(string(data), "\n")
	if found {
		value = strings.TrimSuffix(value, "\r")
	}
	if value == "" {
		p.problem(path, n, "file %s is empty", file)
		return "", false
	}
	return taskbot.Secret(value), true
}

// visibleLength counts the characters of s that are not white space: a
// secret of spaces would be masked in every indented line.
func visibleLength(s string) int {
	n := 0
	for _, r := range s {
		if !unicode.IsSpace(r) {
			n++
		}
	}
	return n
}
