package task

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/command"
)

// Handle carries out one chat command. For /task it returns only once the
// task has finished, was refused, or waits for approval. A refusal is an
// error of type *taskbot.Error whose message the requester can act on.
func (s *Service) Handle(ctx context.Context, req Request) (Reply, error) {
	c := req.Command
	switch {
	case c.Name == "task" && c.Help:
		return s.help(ctx, req.User)
	case c.Name == "task":
		return Reply{}, s.request(ctx, req)
	case c.Name == "lock" && c.Help:
		return Reply{Text: command.Usage("lock")}, nil
	case c.Name == "lock" && c.List:
		return s.listLocks(ctx)
	case c.Name == "lock":
		return s.lock(ctx, req)
	case c.Name == "unlock" && c.Help:
		return Reply{Text: command.Usage("unlock")}, nil
	case c.Name == "unlock":
		return s.unlock(ctx, req)
	}
	return Reply{}, taskbot.Errorf(taskbot.EInvalid, "unknown command /%s", c.Name)
}

// stack returns the named stack, or an error pointing to /task help. It
// lists no stacks: anyone may ask, and /task help shows each user the
// ones they may use.
func (s *Service) stack(name string) (*taskbot.Stack, error) {
	if st, ok := s.Stacks[name]; ok {
		return st, nil
	}
	return nil, taskbot.Errorf(taskbot.ENotFound,
		"There is no stack %q. `/task help` lists the stacks you may use.", name)
}

func (s *Service) stackNames() []string {
	return slices.Sorted(maps.Keys(s.Stacks))
}

// help lists the commands and the stacks the user may run tasks on.
func (s *Service) help(ctx context.Context, user string) (Reply, error) {
	var mine []string
	for _, name := range s.stackNames() {
		if s.isWriter(ctx, s.Stacks[name], user) {
			mine = append(mine, name)
		}
	}

	var b strings.Builder
	b.WriteString(command.Usage("task"))
	b.WriteString("\n")
	b.WriteString(command.Usage("lock"))
	b.WriteString("\n")
	b.WriteString(command.Usage("unlock"))
	b.WriteString("\n\n")
	if len(mine) == 0 {
		b.WriteString("You are not a writer of any stack, so you cannot run tasks yet.")
	} else {
		fmt.Fprintf(&b, "Stacks you can run tasks on: %s", strings.Join(mine, ", "))
	}
	return Reply{Text: b.String()}, nil
}

// isWriter reports whether user may run tasks on st: listed by ID, or a
// member of a listed user group. Names are never trusted.
func (s *Service) isWriter(ctx context.Context, st *taskbot.Stack, user string) bool {
	if slices.Contains(st.Writers, user) {
		return true
	}
	for _, w := range st.Writers {
		if isGroup(w) && s.inGroup(ctx, w, user) {
			return true
		}
	}
	return false
}

// inGroup reports whether user is a member of group. A group that cannot be
// read (deleted, a missing scope, a rate limit) counts as not containing
// the user: that denies only its members, not everyone, and says why in
// the log.
func (s *Service) inGroup(ctx context.Context, group, user string) bool {
	members, err := s.Directory.GroupMembers(ctx, group)
	if err != nil {
		s.Log.WithError(err).WithField("group", group).Warn("user group unreadable; its members count as non-members")
		return false
	}
	return slices.Contains(members, user)
}

// requireWriter refuses a user who is not a writer of st; doing says what
// they tried ("run tasks on it").
func (s *Service) requireWriter(ctx context.Context, st *taskbot.Stack, user, doing string) error {
	if !s.isWriter(ctx, st, user) {
		return taskbot.Errorf(taskbot.EForbidden,
			"You are not a writer of stack *%s*, so you cannot %s. Its writers: %s.",
			st.Name, doing, writersText(st))
	}
	return nil
}

// userGroups returns the configured user groups that user belongs to, for
// policies to see.
func (s *Service) userGroups(ctx context.Context, user string) []string {
	seen := map[string]bool{}
	groups := []string{}
	for _, name := range s.stackNames() {
		for _, w := range s.Stacks[name].Writers {
			if !isGroup(w) || seen[w] {
				continue
			}
			seen[w] = true
			if s.inGroup(ctx, w, user) {
				groups = append(groups, w)
			}
		}
	}
	slices.Sort(groups)
	return groups
}

func isGroup(id string) bool { return strings.HasPrefix(id, "S") }

// writersText names a stack's writers for a refusal message.
func writersText(st *taskbot.Stack) string {
	names := make([]string, len(st.Writers))
	for i, w := range st.Writers {
		if isGroup(w) {
			names[i] = "<!subteam^" + w + ">"
		} else {
			names[i] = "<@" + w + ">"
		}
	}
	return strings.Join(names, ", ")
}
