// Package config reads taskbot's YAML configuration: the stacks tasks run
// against, where the policies live, and how approvals are given.
//
// Parse reports every problem of a file at once, each prefixed with the key
// path it concerns, so that an operator can fix them all in one go. Secrets
// are resolved while parsing, from the environment or from files, and never
// appear in an error.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/taskbot/taskbot"
	"go.yaml.in/yaml/v3"
)

// Defaults for keys the file may leave out.
const (
	DefaultTimeout = 30 * time.Minute
	DefaultEmoji   = "white_check_mark"

	// MinSecretLength is the shortest secret value accepted: every
	// occurrence of a secret is masked, and a short one would mask
	// fragments of ordinary words.
	MinSecretLength = 6
	DefaultPrefix   = "taskbot:"
)

// Reserved are the names a stack may not have, compared without regard to
// case: they are subcommands of the slash command.
var Reserved = []string{
	"help", "status", "list", "lock", "unlock", "locks", "cancel", "approve",
	"queue", "log", "logs", "history", "config", "version",
}

// Config is a parsed and validated configuration file.
type Config struct {
	// Stacks by name; every Stack's Name is its key and its secrets are
	// resolved.
	Stacks map[string]*taskbot.Stack

	// Policies is the absolute path of the directory of Rego policies, or
	// "" when the file names none and every task is allowed.
	Policies string

	Approval Approval

	// Prefix starts every Redis key taskbot writes, so that several bots can
	// share one Redis. Default DefaultPrefix.
	Prefix string
}

// Approval configures how tasks held by a policy are approved.
type Approval struct {
	// Emoji is the name of the reaction that approves, without colons.
	// Default DefaultEmoji.
	Emoji string
}

// ValidationError lists every problem found in a configuration, in the
// order they appear in the file, each starting with its key path.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string { return strings.Join(e.Problems, "\n") }

// Load reads and parses the configuration file at path. Relative paths in
// the file resolve against the file's directory. getenv looks up the
// environment variables secrets name; nil means os.Getenv.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("locate config %s: %w", path, err)
	}

	c, err := Parse(data, filepath.Dir(abs), getenv)
	if err != nil {
		return nil, fmt.Errorf("load config %s:\n%w", path, err)
	}
	return c, nil
}

// Parse parses a configuration whose relative paths resolve against
// baseDir. Its error is a *ValidationError listing every problem. getenv
// looks up the environment variables secrets name; nil means os.Getenv.
func Parse(data []byte, baseDir string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, more yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, &ValidationError{Problems: []string{err.Error()}}
	}
	// A second document would be ignored, problems and all; an empty one
	// (a trailing "---") is harmless.
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) && !isNull(documentRoot(&more)) {
		return nil, &ValidationError{Problems: []string{"the file must hold one YAML document, not several"}}
	}

	p := &parser{baseDir: baseDir, getenv: getenv}
	c := p.config(documentRoot(&doc))
	if len(p.problems) > 0 {
		return nil, &ValidationError{Problems: p.problems}
	}
	return c, nil
}

// StackNames returns the names of the stacks, sorted.
func (c *Config) StackNames() []string {
	names := make([]string, 0, len(c.Stacks))
	for name := range c.Stacks {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Secrets returns every distinct secret of every stack, for the masker that
// keeps them out of output and logs.
func (c *Config) Secrets() []taskbot.Secret {
	var out []taskbot.Secret
	for _, name := range c.StackNames() {
		secrets := c.Stacks[name].Secrets
		for _, key := range slices.Sorted(maps.Keys(secrets)) {
			if !slices.Contains(out, secrets[key]) {
				out = append(out, secrets[key])
			}
		}
	}
	return out
}
