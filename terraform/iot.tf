# Device → cloud messages reach the device-message function through one IoT rule per type.

# Where a rule writes the messages its Lambda action could not deliver (throttled, function
# error): without it they would be dropped silently.
resource "aws_cloudwatch_log_group" "rule_errors" {
  name              = "/aws/iot/${var.name_prefix}-rule-errors"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_iot_topic_rule" "device_message" {
  for_each = local.rules

  name        = "${local.rule_prefix}_${each.key}"
  description = "Forwards ${each.key} from devices to ${local.function_names[each.value.function]}."
  enabled     = true
  sql         = local.rule_sql[each.key]
  sql_version = "2016-03-23"

  lambda {
    function_arn = aws_lambda_function.function[each.value.function].arn
  }

  error_action {
    cloudwatch_logs {
      log_group_name = aws_cloudwatch_log_group.rule_errors.name
      role_arn       = aws_iam_role.rule_errors.arn
    }
  }

  tags = local.tags
}

resource "aws_lambda_permission" "iot_rule" {
  for_each = local.rules

  statement_id   = "AllowIoTRule-${each.key}"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function[each.value.function].function_name
  principal      = "iot.amazonaws.com"
  source_arn     = aws_iot_topic_rule.device_message[each.key].arn
  source_account = local.account
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
