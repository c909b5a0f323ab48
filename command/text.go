package command

import "strings"

// normalizer undoes what chat clients and phone keyboards "improve" while a
// command is typed.
var normalizer = newNormalizer()

func newNormalizer() *strings.Replacer {
	pairs := []string{
		"‘", "'", "’", "'", "‚", "'", "‛", "'",
		"“", `"`, "”", `"`, "„", `"`, "‟", `"`,
		"—", "--", "–", "--", // clients turn a typed "--" into a dash
		"…", "...", // and "..." into an ellipsis
		"\u00a0", " ", "\u2007", " ", "\u202f", " ",
	}
	for r := '\u2000'; r <= '\u200a'; r++ {
		pairs = append(pairs, string(r), " ")
	}
	return strings.NewReplacer(pairs...)
}

// Normalize replaces curly quotes with straight ones, em and en dashes with
// "--", and non-breaking and other typographic spaces with plain spaces. It
// leaves everything else alone.
func Normalize(s string) string {
	return normalizer.Replace(s)
}

// usages holds the usage text of each command.
var usages = map[string]string{
	"task": "Usage: /task <stack> [--skip-init] [--] <command…>\n" +
		"  --skip-init  do not run the stack's init command first\n" +
		"  --           end of options: the rest is your command, even if it starts with --\n" +
		"Example: /task prod terraform plan",
	"lock": "Usage: /lock                     list the locks\n" +
		"       /lock <stack> [reason…]  lock a stack\n" +
		"Example: /lock prod upgrading the database",
	"unlock": "Usage: /unlock <stack>  release a stack's lock\n" +
		"Example: /unlock prod",
}

// Usage returns the usage text of the command name ("task", "lock" or
// "unlock", with or without the slash), or of all three for any other name.
// Like every text taskbot shows people it is Slack mrkdwn, so its <…> are
// escaped.
func Usage(name string) string {
	u, ok := usages[strings.TrimPrefix(name, "/")]
	if !ok {
		u = usages["task"] + "\n\n" + usages["lock"] + "\n\n" + usages["unlock"]
	}
	return escape(u)
}

// markup escapes what Slack mrkdwn reads as its own: &, < and >.
var markup = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func escape(s string) string { return markup.Replace(s) }
