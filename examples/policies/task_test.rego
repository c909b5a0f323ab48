# Tests of task.rego. Each test builds the input a task would have and checks
# the reasons the policies give, including commands that must not match.
package taskbot.task_test

import data.taskbot.task

production := {"name": "prod", "labels": {"env": "production"}}

dev := {"name": "dev", "labels": {"env": "dev"}}

run(stack, command) := {
	"stack": stack,
	"command": command,
	"skip_init": false,
	"user": {"id": "U0DEMO", "groups": []},
	"channel": {"id": "C0DEMO"},
}

denied(stack, command) if count(task.deny) > 0 with input as run(stack, command)

needs_approval(stack, command) if {
	count(task.require_approval) > 0 with input as run(stack, command)
}

test_destroy_denied_on_production if {
	denied(production, "terraform destroy")
	denied(production, "terraform destroy -auto-approve")
	denied(production, "terraform apply -destroy")
	denied(production, "terraform apply --destroy=true")
	denied(production, "terraform   'destroy'")
	denied(production, "terraform plan -destroy -out=plan")
}

test_deny_reason_names_the_stack if {
	reasons := task.deny with input as run(production, "terraform destroy")
	reasons == {`Destroying anything on the production stack "prod" is not allowed; ask an operator.`}
}

test_destroy_allowed_elsewhere if {
	not denied(dev, "terraform destroy")
	not denied({"name": "bare", "labels": {}}, "terraform destroy")
}

test_destroy_must_be_a_word if {
	not denied(production, "terraform plan")
	not denied(production, "terraform apply -target=module.destroyer")
	not denied(production, "terraform state rm aws_instance.destroy_me")
	not denied(production, "echo indestroyable")
}

test_state_rm_needs_approval if {
	needs_approval(dev, "terraform state rm aws_instance.web")
	needs_approval(production, "terraform -chdir=infra state rm -dry-run aws_instance.web")
	needs_approval(dev, "terraform init && terraform state rm aws_instance.web")
	needs_approval(dev, "/usr/local/bin/terraform state rm aws_instance.web")
}

test_taint_and_import_need_approval if {
	needs_approval(dev, "terraform taint aws_instance.web")
	needs_approval(dev, "terraform import aws_instance.web i-0123456789")
}

test_replace_needs_approval if {
	needs_approval(dev, "terraform apply -replace=aws_instance.web")
	needs_approval(dev, "terraform plan --replace aws_instance.web")
	not needs_approval(dev, "terraform apply -target=module.replace")
}

test_approval_reasons if {
	reasons := task.require_approval with input as run(dev, "terraform taint aws_instance.web")
	reasons == {"terraform taint needs approval: the next apply destroys and recreates the resource."}
}

test_other_commands_need_no_approval if {
	not needs_approval(dev, "terraform plan")
	not needs_approval(dev, "terraform state list")
	not needs_approval(dev, "terraform state mv a b")
	not needs_approval(dev, "terraform untaint aws_instance.web")
	not needs_approval(dev, "echo terraform-taint")
	not needs_approval(dev, "terraform plan -target=module.import")
}

test_plain_commands_allowed if {
	count(task.deny) == 0 with input as run(production, "terraform plan")
	count(task.require_approval) == 0 with input as run(production, "terraform plan")
}
