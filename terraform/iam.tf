# Every role and policy Rotor creates. Policies are built with jsonencode rather than
# aws_iam_policy_document so that the tests assert on the real rendered JSON.
#
# Each function has its own role holding exactly the actions the wiring lists for it
# (locals.tf function_policies), plus a separate "observability" policy for what Lambda
# itself needs to write logs and traces. Trust policies carry aws:SourceAccount/SourceArn
# against the confused-deputy problem where the service documents that it sets them (Step
# Functions, IoT rule actions); elsewhere a condition on a key the service leaves unset
# would make the role impossible to assume.

locals {
  kms_statements = var.sns_kms_key_arn == null ? [] : [
    {
      # A customer managed key must let the publisher encrypt (the AWS managed aws/sns key
      # already allows every principal of the account to use it through SNS).
      Sid      = "EncryptedTopics"
      Effect   = "Allow"
      Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
      Resource = [var.sns_kms_key_arn]
    }
  ]

  # X-Ray's write actions have no resource-level permissions: "*" is the only resource IAM accepts.
  xray_write_statement = {
    Sid      = "XRayTraces"
    Effect   = "Allow"
    Action   = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    Resource = ["*"]
  }

  function_observability_policies = {
    for name, _ in local.wiring.functions : name => jsonencode({
      Version = "2012-10-17"
      Statement = [
        {
          # Only streams of the function's own group; the group itself is Terraform's.
          Sid      = "OwnLogGroup"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
          Resource = ["${aws_cloudwatch_log_group.function[name].arn}:*"]
        },
        local.xray_write_statement,
      ]
    })
  }

  state_machine_observability_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          # Step Functions delivers logs through CloudWatch Logs "log deliveries", whose
          # actions have no resource-level permissions (AWS documents "*" for them).
          Sid    = "LogDelivery"
          Effect = "Allow"
          Action = [
            "logs:CreateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:DescribeLogGroups",
            "logs:DescribeResourcePolicies",
            "logs:GetLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:UpdateLogDelivery",
          ]
          Resource = ["*"]
        },
        {
          # Tracing: segments plus the sampling rules Step Functions reads before sampling.
          Sid      = "XRayTraces"
          Effect   = "Allow"
          Action   = ["xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments"]
          Resource = ["*"]
        },
      ],
      local.kms_statements,
    )
  })

  rule_errors_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "RuleErrorLog"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
        Resource = ["${aws_cloudwatch_log_group.rule_errors.arn}:*"]
      }
    ]
  })

  audit_notifications_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "PublishAuditResults"
          Effect   = "Allow"
          Action   = ["sns:Publish"]
          Resource = [aws_sns_topic.audit.arn]
        }
      ],
      local.kms_statements,
    )
  })

  # Lambda sends a failed asynchronous event to the on-failure destination with the function's
  # own role: each function may send to its own dead-letter queue and no other. Not in the
  # wiring's permissions, which list what the function's code calls.
  function_dead_letter_policies = {
    for name in local.async_functions : name => jsonencode({
      Version = "2012-10-17"
      Statement = [
        {
          Sid      = "OwnDeadLetterQueue"
          Effect   = "Allow"
          Action   = ["sqs:SendMessage"]
          Resource = [aws_sqs_queue.dead_letter[name].arn]
        }
      ]
    })
  }

  # Every Rotor queue and topic refuses a request not made over TLS: these statements with the
  # queue's or topic's ARN (the topics' in sns.tf and monitoring.tf).
  queue_deny_insecure_transport_statement = {
    Sid       = "DenyInsecureTransport"
    Effect    = "Deny"
    Principal = { AWS = "*" }
    Action    = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
    Condition = { Bool = { "aws:SecureTransport" = "false" } }
  }
  topic_deny_insecure_transport_statement = {
    Sid       = "DenyInsecureTransport"
    Effect    = "Deny"
    Principal = { AWS = "*" }
    Action    = ["sns:Publish", "sns:Subscribe", "sns:Receive"]
    Condition = { Bool = { "aws:SecureTransport" = "false" } }
  }

  dead_letter_queue_policies = {
    for name in local.dead_letter_functions : name => jsonencode({
      Version   = "2012-10-17"
      Statement = [merge(local.queue_deny_insecure_transport_statement, { Resource = [aws_sqs_queue.dead_letter[name].arn] })]
    })
  }

  # The IoT rules write device messages to the rule queue with their own role: send, to that
  # queue only.
  rule_queue_send_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "SendToRuleQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.rule_queue.arn]
      }
    ]
  })

  # The event source mapping polls the rule queue with the function's role: what Lambda's
  # SQS poller needs (AWSLambdaSQSQueueExecutionRole's actions), on that queue only. Not in
  # the wiring's permissions, which list what the function's code calls.
  function_rule_queue_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "PollRuleQueue"
        Effect   = "Allow"
        Action   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        Resource = [aws_sqs_queue.rule_queue.arn]
      }
    ]
  })

  rule_queue_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [merge(local.queue_deny_insecure_transport_statement, { Resource = [aws_sqs_queue.rule_queue.arn] })]
  })

  # IoT assumes two kinds of role: a rule action's, and Device Defender's.
  iot_trust_statement = {
    Effect    = "Allow"
    Principal = { Service = "iot.amazonaws.com" }
    Action    = ["sts:AssumeRole"]
  }

  # The roles IoT rule actions assume (rule errors, rule queue): IoT sets the source keys for a
  # rule action, so only this account's Rotor rules can assume them.
  iot_rule_trust_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [merge(local.iot_trust_statement, {
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account }
        ArnLike      = { "aws:SourceArn" = "${local.iot_arn}:rule/${local.rule_prefix}_*" }
      }
    })]
  })

  # The roles Device Defender assumes (audit notifications, the audit itself): it does not
  # document setting the source keys, so no condition on them.
  device_defender_trust_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.iot_trust_statement]
  })

  # Every policy document this module writes, by name: the tests check each of them.
  policy_documents = merge(
    { for name, doc in local.function_policies : "function:${name}" => doc },
    { for name, doc in local.function_observability_policies : "function-observability:${name}" => doc },
    { for name, doc in local.function_dead_letter_policies : "function-dead-letter:${name}" => doc },
    { for name, doc in local.dead_letter_queue_policies : "dead-letter-queue:${name}" => doc },
    {
      "state-machine"               = local.state_machine_policies[local.wiring.stateMachine.name]
      "state-machine-observability" = local.state_machine_observability_policy
      "rule-errors"                 = local.rule_errors_policy
      "rule-queue-send"             = local.rule_queue_send_policy
      "function-rule-queue"         = local.function_rule_queue_policy
      "rule-queue"                  = local.rule_queue_policy
      "audit-notifications"         = local.audit_notifications_policy
      "device"                      = local.device_policy_document
      "alarm-topic"                 = local.alarm_topic_policy
      "audit-topic"                 = local.audit_topic_policy
    },
  )
}

# --- functions --------------------------------------------------------------------------

resource "aws_iam_role" "function" {
  for_each = local.function_names

  name        = each.value
  description = "Rotor function ${each.key}: only the actions wiring/wiring.json lists for it."
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "lambda.amazonaws.com" }
        Action    = ["sts:AssumeRole"]
      }
    ]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "function" {
  for_each = local.function_names

  name   = "rotor"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

resource "aws_iam_role_policy" "function_dead_letter" {
  for_each = local.async_functions

  name   = "dead-letter"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_dead_letter_policies[each.key]
}

resource "aws_iam_role_policy" "function_rule_queue" {
  name   = "rule-queue"
  role   = aws_iam_role.function[local.rule_queue_function].id
  policy = local.function_rule_queue_policy
}

resource "aws_iam_role_policy" "function_observability" {
  for_each = local.function_names

  name   = "observability"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_observability_policies[each.key]
}

# --- IoT --------------------------------------------------------------------------------

resource "aws_iam_role" "rule_errors" {
  name               = "${var.name_prefix}-iot-rule-errors"
  description        = "Lets Rotor's IoT rules write the messages they could not deliver to their error log group."
  assume_role_policy = local.iot_rule_trust_policy
  tags               = local.tags
}

resource "aws_iam_role_policy" "rule_errors" {
  name   = "rule-errors"
  role   = aws_iam_role.rule_errors.id
  policy = local.rule_errors_policy
}

resource "aws_iam_role" "rule_queue" {
  name               = "${var.name_prefix}-iot-rule-queue"
  description        = "Lets Rotor's IoT rules write device messages to the rule queue ${local.rule_queue_name}."
  assume_role_policy = local.iot_rule_trust_policy
  tags               = local.tags
}

resource "aws_iam_role_policy" "rule_queue" {
  name   = "rule-queue"
  role   = aws_iam_role.rule_queue.id
  policy = local.rule_queue_send_policy
}

# Device Defender sends audit notifications with this role. It exists even when the audit
# configuration is managed elsewhere: that configuration can name it (audit_notifications_role_arn output).
resource "aws_iam_role" "audit_notifications" {
  name               = "${var.name_prefix}-audit-notifications"
  description        = "Lets Device Defender publish audit results to Rotor's audit topic."
  assume_role_policy = local.device_defender_trust_policy
  tags               = local.tags
}

resource "aws_iam_role_policy" "audit_notifications" {
  name   = "publish-audit-results"
  role   = aws_iam_role.audit_notifications.id
  policy = local.audit_notifications_policy
}

# The role Device Defender audits with. It reads the account's certificates, policies and
# things: AWS's own read-only AWSIoTDeviceDefenderAudit policy is the narrowest that AWS
# keeps current as audit checks are added.
resource "aws_iam_role" "audit" {
  count = var.manage_audit_configuration ? 1 : 0

  name               = "${var.name_prefix}-device-defender-audit"
  description        = "Lets Device Defender read the account's IoT configuration to audit it."
  assume_role_policy = local.device_defender_trust_policy
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "audit" {
  count = var.manage_audit_configuration ? 1 : 0

  role       = aws_iam_role.audit[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSIoTDeviceDefenderAudit"
}
