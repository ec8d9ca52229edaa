# The CA rollover (issue 11 part 2; docs/design.md "CA rollover"): its own state machine, set up
# with the others from wiring.json's caRollover (stepfunctions.tf), whose four functions are in
# wiring.json's functions like every other (lambda.tf, iam.tf build them), and the settings and
# IAM only it needs.

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
  # Its state machine is set up with the others (stepfunctions.tf); its ARN keeps the name
  # other files and branches refer to it by.
  ca_rollover_state_machine_arn = local.state_machine_arns[local.wiring.caRollover.name]

  # The wiring settings of the rollover (settings of locals.tf).
  ca_rollover_settings = {
    caRolloverPollSeconds    = var.ca_rollover_poll_seconds
    caRolloverMaxWaitSeconds = var.ca_rollover_max_wait_seconds
    # What an audit's CA_CERTIFICATE_EXPIRING_CHECK finding rolls over to; "" escalates "no successor configured".
    nextPrivateCaArn = var.next_private_ca_arn == null ? "" : var.next_private_ca_arn
  }

  # The wiring's IAM resource kind the rollover adds: the IoT CA certificates (Describe and
  # UpdateCACertificate act on cacert/ARNs). Its state machine's own functions are
  # stepfunctions.tf's state_machine_function_kinds.
  ca_rollover_resource_kinds = {
    "caCertificates" = {
      sid       = "CaCertificates"
      resources = ["${local.iot_arn}:cacert/*"]
    }
  }

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

output "ca_rollover_state_machine_arn" {
  description = "The CA rollover state machine: `rotor ca rollover` starts it."
  value       = aws_sfn_state_machine.state_machine[local.wiring.caRollover.name].arn
}
