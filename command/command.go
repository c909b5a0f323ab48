// Package command parses the text of taskbot's slash commands (/task, /lock
// and /unlock) into a [Command].
//
// The text is data, not shell: it is split into words only as far as the
// grammar needs, and a task's command is kept verbatim for sh -c to read.
// Parse expects text that is already decoded from Slack's escaping.
package command

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/taskbot/taskbot"
)

// Command is one parsed slash command.
type Command struct {
	Name     string // "task", "lock" or "unlock"
	Help     bool   // the user asked for the usage text
	List     bool   // /lock alone: list the locks
	Stack    string
	SkipInit bool   // /task --skip-init: do not run the stack's init command
	Text     string // /task: the command to run, verbatim; /lock: the reason
}

// usageError returns the error for a command name that cannot be parsed: a
// *taskbot.Error with code EInvalid whose message is the formatted sentence,
// escaped since it may quote what the user typed, then the command's usage.
func usageError(name, format string, args ...any) *taskbot.Error {
	return taskbot.Errorf(taskbot.EInvalid, "%s\n%s", escape(fmt.Sprintf(format, args...)), Usage(name))
}

// Parse parses the text a user typed after the slash command name (given
// with or without its slash). It normalises what chat clients "improve"
// first (see [Normalize]). Errors are *[taskbot.Error] with code
// [taskbot.EInvalid].
func Parse(name, text string) (Command, error) {
	text = Normalize(text)

	switch strings.TrimPrefix(name, "/") {
	case "task":
		return parseTask(text)
	case "lock":
		return parseLock(text)
	case "unlock":
		return parseUnlock(text)
	}
	return Command{}, usageError("", "I don't know the command %s.", name)
}

// ParseMasked is [Parse] for text that may hold secrets, such as what a user
// typed. When text holding a secret does not parse, its error quotes
// nothing: once a word is quoted with %q and escaped, a secret in it is past
// recognising, and even a masked quote would confirm a guess. The command
// itself holds the text as typed, so that the task lifecycle can refuse one
// that holds a secret.
func ParseMasked(name, text string, mask func(string) string) (Command, error) {
	cmd, err := Parse(name, text)
	if err == nil {
		return cmd, nil
	}
	// Masked before Normalize too, which could change a typed secret
	// ("—" becomes "--") before the masker sees it.
	masked := mask(Normalize(mask(text)))
	if masked == Normalize(text) {
		return Command{}, err
	}
	// The text held a secret's value. Quoting it, even masked, would tell
	// anyone who guessed a secret that they guessed right.
	return Command{}, usageError(name, "I could not read that command.")
}

// parseTask parses "<stack> [--skip-init] [--] <command…>".
func parseTask(text string) (Command, error) {
	cmd := Command{Name: "task"}
	stack, rest := cutWord(text)
	if isHelp(stack) {
		cmd.Help = true
		return cmd, nil
	}
	if err := checkStack("task", stack); err != nil {
		return Command{}, err
	}
	cmd.Stack = stack

	// Options come right after the stack; the first other word starts the
	// command, and "--" ends the options explicitly.
	for {
		word, after := cutWord(rest)
		if word == "--" {
			rest = after
			break
		}
		if word == "--skip-init" {
			cmd.SkipInit = true
			rest = after
			continue
		}
		if strings.HasPrefix(word, "--") {
			return Command{}, usageError("task",
				"unknown option %s; to pass it to your command write /task %s -- %s …",
				word, stack, word)
		}
		break
	}

	cmd.Text = strings.TrimSpace(rest)
	if cmd.Text == "" {
		return Command{}, usageError("task", "tell me what to run: /task %s terraform plan", stack)
	}
	return cmd, nil
}

// parseLock parses "" (list the locks) or "<stack> [reason…]".
func parseLock(text string) (Command, error) {
	cmd := Command{Name: "lock"}
	stack, rest := cutWord(text)
	switch {
	case stack == "":
		cmd.List = true
		return cmd, nil
	case isHelp(stack):
		cmd.Help = true
		return cmd, nil
	}

	if err := checkStack("lock", stack); err != nil {
		return Command{}, err
	}
	cmd.Stack = stack
	cmd.Text = strings.TrimSpace(rest)
	return cmd, nil
}

// parseUnlock parses "<stack>".
func parseUnlock(text string) (Command, error) {
	cmd := Command{Name: "unlock"}
	stack, rest := cutWord(text)
	switch {
	case stack == "":
		return Command{}, usageError("unlock", "which stack? /unlock prod")
	case isHelp(stack):
		cmd.Help = true
		return cmd, nil
	}

	if err := checkStack("unlock", stack); err != nil {
		return Command{}, err
	}
	if extra := strings.TrimSpace(rest); extra != "" {
		return Command{}, usageError("unlock",
			"/unlock takes only a stack name, not %q: /unlock %s", extra, stack)
	}
	cmd.Stack = stack
	return cmd, nil
}

// checkStack returns a usage error for command name if stack cannot name a
// stack.
func checkStack(name, stack string) error {
	if taskbot.ValidStackName(stack) {
		return nil
	}
	if name == "task" && strings.HasPrefix(stack, "-") {
		return usageError(name, "name the stack first: /task prod %s …", stack)
	}
	return usageError(name, "%q is not a stack name: use %s", stack, taskbot.StackNameRule)
}

// isHelp reports whether word asks for help.
func isHelp(word string) bool {
	return word == "" || word == "help" || word == "--help"
}

// cutWord returns the first word of s, after any leading space, and the rest
// of s from the space that ends the word on.
func cutWord(s string) (word, rest string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}
