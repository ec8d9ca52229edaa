# The CA rollover (issue 11 part 2; docs/design.md "CA rollover"): its own state machine, whose
# four functions are in wiring.json's functions like every other (lambda.tf, iam.tf build them),
# and the settings and IAM only it needs.

variable "ca_rollover_poll_seconds" {
  description = "CA rollover: seconds between two passes over the old CA's certificates while the device rotations run."
  type        = number
  default     = 300

  validation {
    condition     = var.ca_rollover_poll_seconds >= 10 && var.ca_rollover_poll_seconds <= 86400 && floor(var.ca_rollover_poll_seconds) == var.ca_rollover_poll_seconds
    error_message = "ca_rollover_poll_seconds must be a whole number of seconds from 10 to 86400."
  }
}

variable "ca_rollover_max_wait_seconds" {
  description = "CA rollover: how long after its start the rollover waits for rotations still running; past it the devices left are escalated and the old CA stays ACTIVE."
  type        = number
  default     = 172800

  validation {
    # A Standard execution lives at most a year; leave the rollover room to finish.
    condition     = var.ca_rollover_max_wait_seconds >= 60 && var.ca_rollover_max_wait_seconds <= 31000000 && floor(var.ca_rollover_max_wait_seconds) == var.ca_rollover_max_wait_seconds
    error_message = "ca_rollover_max_wait_seconds must be a whole number of seconds from 60 to 31000000."
  }
}

variable "next_private_ca_arn" {
  description = "The Private CA a CA rollover may move the fleet to (the successor of private_ca_arn). Issue certificate and Verify new CA are granted it, so that issuing can switch to it at run time; null: no rollover target."
  type        = string
  default     = null

  validation {
    condition     = var.next_private_ca_arn == null || can(regex("^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:[0-9]{12}:certificate-authority/[0-9a-f-]{36}$", var.next_private_ca_arn))
    error_message = "next_private_ca_arn must be a Private CA ARN (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/UUID) or null."
  }
}

locals {
  ca_rollover_state_machine_name = "${var.name_prefix}-${local.wiring.caRollover.name}"
  ca_rollover_state_machine_arn  = "${local.arn_prefix}:states:${local.region}:${local.account}:stateMachine:${local.ca_rollover_state_machine_name}"

  # The wiring settings of the rollover (settings of locals.tf).
  ca_rollover_settings = {
    caRolloverPollSeconds    = var.ca_rollover_poll_seconds
    caRolloverMaxWaitSeconds = var.ca_rollover_max_wait_seconds
    # What an audit's CA_CERTIFICATE_EXPIRING_CHECK finding rolls over to; "" escalates "no successor configured".
    nextPrivateCaArn = var.next_private_ca_arn == null ? "" : var.next_private_ca_arn
  }

  # The wiring's IAM resource kinds the rollover adds: the IoT CA certificates (Describe and
  # UpdateCACertificate act on cacert/ARNs), and the rollover state machine's own functions.
  ca_rollover_resource_kinds = {
    "caCertificates" = {
      sid       = "CaCertificates"
      resources = ["${local.iot_arn}:cacert/*"]
    }
    "caRolloverFunctions" = {
      sid = "CaRolloverFunctions"
      resources = sort([
        for name, ref in local.wiring.caRollover.substitutions : local.references[ref] if startswith(ref, "function:")
      ])
    }
  }

  ca_rollover_definition = templatefile("${path.module}/../${local.wiring.caRollover.definition}", { for name, ref in local.wiring.caRollover.substitutions : name => local.references[ref] })

  ca_rollover_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      for kind in sort(distinct(values(local.wiring.caRollover.permissions))) : {
        Sid      = local.resource_kinds[kind].sid
        Effect   = "Allow"
        Action   = sort([for action, k in local.wiring.caRollover.permissions : action if k == kind])
        Resource = local.resource_kinds[kind].resources
      }
    ]
  })

  # The successor CA, for the functions that sign with whichever CA issues now: the same
  # Private CA actions their wiring grants on private_ca_arn, on next_private_ca_arn.
  next_ca_functions = local.private_ca_enabled && var.next_private_ca_arn != null ? toset(["issue-certificate", "ca-verify-new"]) : toset([])
  next_ca_policies = {
    for name in local.next_ca_functions : name => jsonencode({
      Version = "2012-10-17"
      Statement = [
        {
          Sid      = "NextPrivateCa"
          Effect   = "Allow"
          Action   = sort([for action, kind in local.wiring.functions[name].permissions : action if kind == "privateCa"])
          Resource = [var.next_private_ca_arn]
        }
      ]
    })
  }
}

resource "aws_cloudwatch_log_group" "ca_rollover" {
  name              = "/aws/vendedlogs/states/${local.ca_rollover_state_machine_name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_iam_role" "ca_rollover" {
  name        = "${local.ca_rollover_state_machine_name}-sfn"
  description = "Rotor CA rollover state machine: invokes its functions, publishes its escalation."
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "states.amazonaws.com" }
        Action    = ["sts:AssumeRole"]
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account }
          ArnLike      = { "aws:SourceArn" = local.ca_rollover_state_machine_arn }
        }
      }
    ]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "ca_rollover" {
  name   = "rotor"
  role   = aws_iam_role.ca_rollover.id
  policy = local.ca_rollover_policy
}

resource "aws_iam_role_policy" "ca_rollover_observability" {
  name   = "observability"
  role   = aws_iam_role.ca_rollover.id
  policy = local.state_machine_observability_policy
}

resource "aws_iam_role_policy" "next_private_ca" {
  for_each = local.next_ca_policies

  name   = "next-private-ca"
  role   = aws_iam_role.function[each.key].id
  policy = each.value
}

# start-rotations starts the rollover of a CA an audit flags as expiring. Its wiring grants
# states:StartExecution on the rotation state machine; this adds the rollover's, and nothing else.
resource "aws_iam_role_policy" "start_rotations_ca_rollover" {
  name = "ca-rollover-start"
  role = aws_iam_role.function["start-rotations"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "CaRolloverStateMachine"
        Effect   = "Allow"
        Action   = ["states:StartExecution"]
        Resource = [local.ca_rollover_state_machine_arn]
      }
    ]
  })
}

resource "aws_sfn_state_machine" "ca_rollover" {
  name       = local.ca_rollover_state_machine_name
  type       = "STANDARD" # waits of hours to days for the fleet's rotations
  role_arn   = aws_iam_role.ca_rollover.arn
  definition = local.ca_rollover_definition

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.ca_rollover.arn}:*"
    include_execution_data = var.sfn_log_include_execution_data
    level                  = var.sfn_log_level
  }

  tracing_configuration {
    enabled = true
  }

  tags = local.tags

  depends_on = [aws_lambda_function.function, aws_iam_role_policy.ca_rollover, aws_iam_role_policy.ca_rollover_observability]
}

output "ca_rollover_state_machine_arn" {
  description = "The CA rollover state machine: `rotor ca rollover` starts it."
  value       = aws_sfn_state_machine.ca_rollover.arn
}
