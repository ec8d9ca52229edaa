# The server trust-store update (docs/protocol.md v1.2, cloud rules C1-C6): one execution of
# this state machine per device and push, started by `rotor trust push`. Its functions
# (trust-request, trust-record) and the rules that carry trust_ack / trust_err to
# device-message come from the wiring like every other function and rule (lambda.tf, iot.tf);
# this file adds what the wiring's trustStateMachine describes: the state machine and its role.

locals {
  # The wiring's trust settings (settings of locals.tf).
  trust_settings = {
    trustAckTimeoutSeconds    = var.trust_ack_timeout_seconds
    trustRequestRetries       = var.trust_request_retries
    trustRetryIntervalSeconds = var.trust_retry_interval_seconds
  }

  trust_state_machine_name = "${var.name_prefix}-${local.wiring.trustStateMachine.name}"
  trust_state_machine_arn  = "${local.arn_prefix}:states:${local.region}:${local.account}:stateMachine:${local.trust_state_machine_name}"

  trust_state_machine_definition = templatefile(
    "${path.module}/../${local.wiring.trustStateMachine.definition}",
    { for name, ref in local.wiring.trustStateMachine.substitutions : name => local.references[ref] },
  )

  # Its own functions only: the trust role cannot invoke a rotation's function.
  trust_resource_kinds = merge(local.resource_kinds, {
    "trustStateMachineFunctions" = {
      sid = "TrustStateMachineFunctions"
      resources = sort([
        for name, ref in local.wiring.trustStateMachine.substitutions : local.references[ref] if startswith(ref, "function:")
      ])
    }
  })

  trust_state_machine_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      for kind in sort(distinct(values(local.wiring.trustStateMachine.permissions))) : {
        Sid      = local.trust_resource_kinds[kind].sid
        Effect   = "Allow"
        Action   = sort([for action, k in local.wiring.trustStateMachine.permissions : action if k == kind])
        Resource = local.trust_resource_kinds[kind].resources
      }
    ]
  })
}

resource "aws_cloudwatch_log_group" "trust_state_machine" {
  name              = "/aws/vendedlogs/states/${local.trust_state_machine_name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_iam_role" "trust_state_machine" {
  name        = "${local.trust_state_machine_name}-sfn"
  description = "Rotor trust-update state machine: claims the thing's trust record, invokes trust-request and trust-record, publishes escalations."
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "states.amazonaws.com" }
        Action    = ["sts:AssumeRole"]
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account }
          ArnLike      = { "aws:SourceArn" = local.trust_state_machine_arn }
        }
      }
    ]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "trust_state_machine" {
  name   = "rotor"
  role   = aws_iam_role.trust_state_machine.id
  policy = local.trust_state_machine_policy
}

resource "aws_iam_role_policy" "trust_state_machine_observability" {
  name   = "observability"
  role   = aws_iam_role.trust_state_machine.id
  policy = local.state_machine_observability_policy
}

resource "aws_sfn_state_machine" "trust_update" {
  name       = local.trust_state_machine_name
  type       = "STANDARD" # waits of up to hours for a device, as the rotation does
  role_arn   = aws_iam_role.trust_state_machine.arn
  definition = local.trust_state_machine_definition

  # Inputs carry the bundle (public) but also task tokens in the history: kept out of the logs
  # by default, as the rotation's are.
  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.trust_state_machine.arn}:*"
    include_execution_data = var.sfn_log_include_execution_data
    level                  = var.sfn_log_level
  }

  tracing_configuration {
    enabled = true
  }

  tags = local.tags

  depends_on = [aws_lambda_function.function, aws_iam_role_policy.trust_state_machine, aws_iam_role_policy.trust_state_machine_observability]
}

output "trust_state_machine_arn" {
  description = "ARN of the trust-update state machine (protocol v1.2): `rotor trust push` starts one execution per device on it."
  value       = aws_sfn_state_machine.trust_update.arn
}
