# Rotor's state machines: the rotation, the trust-store update (trust.tf) and the CA rollover
# (ca-rollover.tf). Each is a key of wiring.json (name, ASL file, placeholders, permissions) and is
# set up here the same way, one instance per state machine: a log group, a role that Step
# Functions may assume for that state machine only, the "rotor" policy of its wiring permissions
# and the "observability" policy. A new state machine is one more entry in state_machines.

locals {
  # By wiring name: the wiring entry and what its role is for (the role's description).
  state_machines = {
    (local.wiring.stateMachine.name) = {
      wiring      = local.wiring.stateMachine
      description = "Rotor state machine: invokes its functions, claims the device record, publishes escalations."
    }
    (local.wiring.trustStateMachine.name) = {
      wiring      = local.wiring.trustStateMachine
      description = "Rotor trust-update state machine: claims the thing's trust record, invokes trust-request and trust-record, publishes escalations."
    }
    (local.wiring.caRollover.name) = {
      wiring      = local.wiring.caRollover
      description = "Rotor CA rollover state machine: invokes its functions, publishes its escalation."
    }
  }

  # ARNs computed from names, not read from the resources: the functions need the state
  # machines' ARNs and the state machines need the functions' ARNs, which would be a cycle.
  state_machine_names = { for key, _ in local.state_machines : key => "${var.name_prefix}-${key}" }
  state_machine_arns  = { for key, name in local.state_machine_names : key => "${local.arn_prefix}:states:${local.region}:${local.account}:stateMachine:${name}" }

  # The ASL's placeholders, filled from the wiring's substitutions. Numbers stay numbers:
  # templatefile() writes them bare where the template has a bare ${Name}.
  state_machine_definitions = {
    for key, machine in local.state_machines : key => templatefile(
      "${path.module}/../${machine.wiring.definition}",
      { for name, ref in machine.wiring.substitutions : name => local.references[ref] },
    )
  }

  # Each state machine invokes its own functions only (those its substitutions name): the wiring
  # gives its lambda:InvokeFunction a kind of its own (stateMachineFunctions, …), merged into
  # resource_kinds (locals.tf).
  state_machine_function_kinds = {
    for key, machine in local.state_machines : machine.wiring.permissions["lambda:InvokeFunction"] => {
      sid = "${upper(substr(machine.wiring.permissions["lambda:InvokeFunction"], 0, 1))}${substr(machine.wiring.permissions["lambda:InvokeFunction"], 1, -1)}"
      resources = sort([
        for name, ref in machine.wiring.substitutions : local.references[ref] if startswith(ref, "function:")
      ])
    }
  }

  # One statement per resource kind, holding exactly the actions the wiring lists for that kind.
  state_machine_policies = {
    for key, machine in local.state_machines : key => jsonencode({
      Version = "2012-10-17"
      Statement = [
        for kind in sort(distinct(values(machine.wiring.permissions))) : {
          Sid      = local.resource_kinds[kind].sid
          Effect   = "Allow"
          Action   = sort([for action, k in machine.wiring.permissions : action if k == kind])
          Resource = local.resource_kinds[kind].resources
        }
      ]
    })
  }
}

# Step Functions vends its logs; the /aws/vendedlogs/ prefix keeps the log group under the
# CloudWatch Logs resource policy size limit when many state machines log.
resource "aws_cloudwatch_log_group" "state_machine" {
  for_each = local.state_machine_names

  name              = "/aws/vendedlogs/states/${each.value}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_iam_role" "state_machine" {
  for_each = local.state_machine_names

  name        = "${each.value}-sfn"
  description = local.state_machines[each.key].description
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "states.amazonaws.com" }
        Action    = ["sts:AssumeRole"]
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account }
          ArnLike      = { "aws:SourceArn" = local.state_machine_arns[each.key] }
        }
      }
    ]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "state_machine" {
  for_each = local.state_machine_names

  name   = "rotor"
  role   = aws_iam_role.state_machine[each.key].id
  policy = local.state_machine_policies[each.key]
}

resource "aws_iam_role_policy" "state_machine_observability" {
  for_each = local.state_machine_names

  name   = "observability"
  role   = aws_iam_role.state_machine[each.key].id
  policy = local.state_machine_observability_policy
}

resource "aws_sfn_state_machine" "state_machine" {
  for_each = local.state_machine_names

  name       = each.value
  type       = "STANDARD" # waits of up to hours (days for a rollover): Express stops after 5 minutes
  role_arn   = aws_iam_role.state_machine[each.key].arn
  definition = local.state_machine_definitions[each.key]

  # Secure by default: state names, timings and errors, without inputs and outputs, which
  # carry task tokens and CSRs (sfn_log_include_execution_data turns them on to debug).
  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine[each.key].arn}:*"
    include_execution_data = var.sfn_log_include_execution_data
    level                  = var.sfn_log_level
  }

  tracing_configuration {
    enabled = true
  }

  tags = local.tags

  # The definition names the functions by computed ARN (see above), so the dependency that
  # makes them exist first has to be stated.
  depends_on = [aws_lambda_function.function, aws_iam_role_policy.state_machine, aws_iam_role_policy.state_machine_observability]
}

# Where each state machine's resources were before they shared this set-up: existing states
# keep their resources (terraform/scripts/moved-check.sh plans against such a state).
moved {
  from = aws_cloudwatch_log_group.state_machine
  to   = aws_cloudwatch_log_group.state_machine["rotate-device"]
}
moved {
  from = aws_iam_role.state_machine
  to   = aws_iam_role.state_machine["rotate-device"]
}
moved {
  from = aws_iam_role_policy.state_machine
  to   = aws_iam_role_policy.state_machine["rotate-device"]
}
moved {
  from = aws_iam_role_policy.state_machine_observability
  to   = aws_iam_role_policy.state_machine_observability["rotate-device"]
}
moved {
  from = aws_sfn_state_machine.rotate_device
  to   = aws_sfn_state_machine.state_machine["rotate-device"]
}

moved {
  from = aws_cloudwatch_log_group.trust_state_machine
  to   = aws_cloudwatch_log_group.state_machine["trust-update"]
}
moved {
  from = aws_iam_role.trust_state_machine
  to   = aws_iam_role.state_machine["trust-update"]
}
moved {
  from = aws_iam_role_policy.trust_state_machine
  to   = aws_iam_role_policy.state_machine["trust-update"]
}
moved {
  from = aws_iam_role_policy.trust_state_machine_observability
  to   = aws_iam_role_policy.state_machine_observability["trust-update"]
}
moved {
  from = aws_sfn_state_machine.trust_update
  to   = aws_sfn_state_machine.state_machine["trust-update"]
}

moved {
  from = aws_cloudwatch_log_group.ca_rollover
  to   = aws_cloudwatch_log_group.state_machine["ca-rollover"]
}
moved {
  from = aws_iam_role.ca_rollover
  to   = aws_iam_role.state_machine["ca-rollover"]
}
moved {
  from = aws_iam_role_policy.ca_rollover
  to   = aws_iam_role_policy.state_machine["ca-rollover"]
}
moved {
  from = aws_iam_role_policy.ca_rollover_observability
  to   = aws_iam_role_policy.state_machine_observability["ca-rollover"]
}
moved {
  from = aws_sfn_state_machine.ca_rollover
  to   = aws_sfn_state_machine.state_machine["ca-rollover"]
}
