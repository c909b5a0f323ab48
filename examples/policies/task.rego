# Example taskbot policies. taskbot evaluates package taskbot.task for every
# task before it runs:
#
#   deny contains reason if { ... }              refuses the task, showing reason
#   require_approval contains reason if { ... }  holds it until approved
#
# input is
#   {"stack": {"name": "prod", "labels": {"env": "production"}},
#    "command": "terraform apply", "skip_init": false,
#    "user": {"id": "U0123ABCD", "groups": ["S0456EFGH"]},
#    "channel": {"id": "C0789IJKL"}}
#
# Run the tests next to this file with `opa test .` (OPA 1.x), or with
# `taskbot check`; taskbot's own tests run them too.
#
# Policies are guardrails against mistakes, not a sandbox: they read the
# command as text, and a writer who means to can always phrase a command so
# that no pattern matches it (`terraform $(echo destroy)`). Who may run tasks
# at all is decided by the stack's writers.
package taskbot.task

# words is the command split on whitespace. Quotes and backslashes are
# dropped first so that `terraform 'destroy'` reads like `terraform destroy`:
# the shell would run both the same way.
words := [w |
	some w in regex.split(`\s+`, regex.replace(input.command, `["'\\]`, ""))
	w != ""
]

# option_name turns "-destroy", "--destroy" and "-destroy=true" into
# "destroy", and leaves other words as they are.
option_name(word) := trim_left(split(word, "=")[0], "-")

production if input.stack.labels.env == "production"

destroys if {
	some word in words
	option_name(word) == "destroy"
}

deny contains reason if {
	production
	destroys
	reason := sprintf(
		"Destroying anything on the production stack %q is not allowed; ask an operator.",
		[input.stack.name],
	)
}

# terraform_calls holds, for every "terraform" in the command, the words
# after it that are not options, so that `terraform -chdir=infra state rm x`
# reads ["state", "rm", "x"]. A set, because one command may call terraform
# several times (`terraform init && terraform taint x`).
terraform_calls contains array.slice(args, i + 1, count(args)) if {
	args := [w | some w in words; not startswith(w, "-")]
	some i, w in args
	regex.match(`(^|/)terraform$`, w) # also /usr/local/bin/terraform
}

require_approval contains reason if {
	some call in terraform_calls
	call[0] == "state"
	call[1] == "rm"
	reason := "terraform state rm needs approval: Terraform forgets the resources, which keep running."
}

require_approval contains reason if {
	some call in terraform_calls
	call[0] == "taint"
	reason := "terraform taint needs approval: the next apply destroys and recreates the resource."
}

require_approval contains reason if {
	some call in terraform_calls
	call[0] == "import"
	reason := "terraform import needs approval: Terraform will manage, and may change, the resource."
}

# -replace is today's form of taint.
require_approval contains reason if {
	some word in words
	option_name(word) == "replace"
	reason := "terraform -replace needs approval: the apply destroys and recreates the resource."
}
