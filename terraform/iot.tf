# Device → cloud messages reach the device-message function through one IoT rule per type,
# which writes them to the rule queue (sqs.tf); an event source mapping hands them to the
# function (lambda.tf).

# Where a rule writes the messages its SQS action could not deliver (refused, queue gone):
# without it they would be dropped silently.
resource "aws_cloudwatch_log_group" "rule_errors" {
  name              = "/aws/iot/${var.name_prefix}-rule-errors"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_iot_topic_rule" "device_message" {
  for_each = local.rules

  name        = "${local.rule_prefix}_${each.key}"
  description = "Queues ${each.key} from devices for ${local.function_names[each.value.function]} (${local.rule_queue_name})."
  enabled     = true
  sql         = local.rule_sql[each.key]
  sql_version = "2016-03-23"

  # The selected JSON as the message body, as device-message parses it (no base64 wrapper).
  sqs {
    queue_url  = aws_sqs_queue.rule_queue.url
    role_arn   = aws_iam_role.rule_queue.arn
    use_base64 = false
  }

  error_action {
    cloudwatch_logs {
      log_group_name = aws_cloudwatch_log_group.rule_errors.name
      role_arn       = aws_iam_role.rule_errors.arn
    }
  }

  tags = local.tags
}

# The policy a device needs for the rotation protocol (PROTOCOL.md "Transport"): connect only
# as its own thing name, and only with a certificate attached to that thing; publish, receive
# and subscribe only below its own management/topic/{thingName}/. Teams with their own device
# policy merge the device_policy_document output into it instead of attaching this one.
locals {
  device_policy_document = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ConnectAsOwnThing"
        Effect    = "Allow"
        Action    = ["iot:Connect"]
        Resource  = ["${local.iot_arn}:client/$${iot:Connection.Thing.ThingName}"]
        Condition = { Bool = { "iot:Connection.Thing.IsAttached" = "true" } }
      },
      {
        Sid      = "SubscribeOwnRotationTopics"
        Effect   = "Allow"
        Action   = ["iot:Subscribe"]
        Resource = ["${local.iot_arn}:topicfilter/${local.topic_root}/$${iot:Connection.Thing.ThingName}/*"]
      },
      {
        Sid      = "PublishAndReceiveOwnRotationTopics"
        Effect   = "Allow"
        Action   = ["iot:Publish", "iot:Receive"]
        Resource = ["${local.iot_arn}:topic/${local.topic_root}/$${iot:Connection.Thing.ThingName}/*"]
      },
    ]
  })
}

resource "aws_iot_policy" "device" {
  name   = "${var.name_prefix}-device-rotation"
  policy = local.device_policy_document
  tags   = local.tags
}
